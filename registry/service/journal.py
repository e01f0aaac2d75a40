"""The registration journal: an append-only, fsynced log of what is pending and what is committed.

A run that is killed at any moment can be resumed from it: a checkpoint seen but not committed
is registered again; one committed is never committed twice (the contract also refuses a duplicate
root, which the registrar takes as already done). Until a commit is final, its record keeps the
signed transaction, its hash and its block hash: after a reorg the very same transaction (same
nonce, same parent) is sent again, and a `recommitted` record notes where it landed; `final` ends it.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class JournalState:
    """What the journal says, replayed: checkpoints by step."""

    seen: dict[int, dict] = field(default_factory=dict)  # step -> the checkpoint event
    committed: dict[int, dict] = field(default_factory=dict)  # step -> the commit record
    final: set[int] = field(default_factory=set)  # steps whose commit is final (deep enough, or finalized)

    def pending_steps(self) -> list[int]:
        return sorted(set(self.seen) - set(self.committed))

    def unfinal(self) -> list[dict]:
        """Commit records kept with their signed transaction and not yet final, in step order: the
        registrar re-checks them, since a reorg can still take them back."""
        return [self.committed[step] for step in sorted(self.committed)
                if step not in self.final and self.committed[step].get("raw_tx")]

    def last_committed(self) -> dict | None:
        return self.committed[max(self.committed)] if self.committed else None


class Journal:
    """Lines of JSON, one record each, appended and fsynced before the caller goes on."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()

    def append(self, kind: str, **record) -> None:
        line = json.dumps({"kind": kind, **record}, sort_keys=True, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def state(self) -> JournalState:
        state = JournalState()
        if not self.path.exists():
            return state
        for line in self.path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            step = int(record["step"])
            if record["kind"] == "final":
                state.final.add(step)
            elif record["kind"] == "recommitted":  # the same transaction, mined again after a reorg
                state.committed[step] = {**state.committed.get(step, {}), **record, "kind": "committed"}
            else:
                (state.committed if record["kind"] == "committed" else state.seen)[step] = record
        return state

    def _drop_torn_tail(self) -> None:
        """A kill during a write can leave a partial last line; it was never acknowledged, so drop it."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
