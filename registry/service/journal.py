"""The registration journal: an append-only, fsynced log of what is pending and what is committed.

A run that is killed at any moment can be resumed from it: a checkpoint seen but not committed
is registered again; one committed is never committed twice (the contract also refuses a duplicate
root, which the registrar takes as already done).
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

    def pending_steps(self) -> list[int]:
        return sorted(set(self.seen) - set(self.committed))

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
            target = state.committed if record["kind"] == "committed" else state.seen
            target[int(record["step"])] = record
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
