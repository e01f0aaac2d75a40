"""The registrar: seals, pins and commits each checkpoint in a background worker, in order.

A checkpoint is a safetensors file or a model directory. Training hands it `CheckpointSaved` records and goes on; the worker does the hashing, the IPFS writes and
the chain transactions. Every step is journaled first, so a run killed at any moment and started
again with --resume registers each checkpoint exactly once: pending ones are redone, and a weights
root the contract already holds is taken as done.
"""

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from modelreg.chain.sending import Sent
from modelreg.errors import ModelregError, TransactionFailed
from modelreg.formats.seal import seal_checkpoint
from modelreg.formats.transcript import (
    TRANSCRIPT_FORMAT,
    TRANSCRIPT_FORMAT_DDP,
    TRANSCRIPT_FORMAT_DP,
    load_batches,
)
from modelreg.records import CheckpointSaved, Commit, VersionRef
from modelreg.service.commit import commit_checkpoint
from modelreg.service.ingest import seal_and_add
from modelreg.service.journal import Journal

_STOP = object()
_REORG_RETRIES = 4  # a chain reorganising every few blocks can take back a read more than once


class Registrar:
    """A background worker with a queue; `submit` never blocks on hashing, IPFS or the chain."""

    def __init__(self, *, client, ipfs, journal: Journal, model_name: str, model_id: int | None,
                 dataset_root: str | None, parent: VersionRef | None = None, prepare=None, on_commit=None,
                 on_error=None, follow_symlinks: bool = False, on_reorg=None, wait_final: bool = False,
                 code_revision: str | None = None):
        """`prepare()`, when given, runs first on the worker and returns the model id: registering the
        dataset and the model there keeps those transactions off the training thread too.
        `on_error(e)` is called on the worker the moment a registration fails; what is queued after
        that stays pending in the journal. `on_reorg(commit_record)` is told, once, of each commit sent
        again after a reorg took its block; with `wait_final`, `close` returns once every commit is final.
        `code_revision` is recorded in every manifest as given (None: none); the caller resolves it
        (`commit.code_revision_of`), since only it knows which code trained."""
        self.client, self.ipfs, self.journal = client, ipfs, journal
        self.model_name, self.model_id, self.dataset_root = model_name, model_id, dataset_root
        self.on_commit, self.on_error = on_commit, on_error
        self.follow_symlinks = follow_symlinks
        self.on_reorg, self.wait_final = on_reorg, wait_final
        self.recommitted: list[int] = []  # steps re-committed after a reorg, each once
        self._watched: dict[int, tuple] = {}  # nonce -> (step, Sent), for commits not yet final
        self.commits: list[Commit] = []
        self.error: BaseException | None = None
        self._revision = code_revision
        self._artifact_cids: dict[str, str] = {}  # path -> CID of what this worker pinned already
        self._queue: queue.Queue = queue.Queue()
        self._prepare = prepare
        last = journal.state().last_committed()
        self._last_version = last["version"] if last else None
        self._parent = parent
        self._thread = threading.Thread(target=self._run, name="registrar", daemon=True)
        self._thread.start()

    # -- called from the training loop ---------------------------------------------------------------
    def submit(self, saved: CheckpointSaved) -> None:
        """Journal the checkpoint as seen (a local fsync, no network), then queue it."""
        record = saved.to_record()
        self.journal.append("seen", **record)
        self._queue.put(record)

    def recover(self, on_disk: Iterable[CheckpointSaved] = ()) -> int:
        """Queue, in step order, what a killed run left unregistered: journaled, or only in `on_disk`,
        the checkpoints the trainer finds in its directory (modelreg's trainer:
        `training.checkpoint.saved_checkpoints`; the registrar knows no trainer's file names)."""
        state = self.journal.state()
        records = {step: state.seen[step] for step in state.pending_steps()}
        for saved in on_disk:
            if saved.step not in state.seen and saved.step not in state.committed:
                # Killed between writing the checkpoint and journaling it: the metrics are lost.
                records[saved.step] = {**saved.to_record(), "recovered": True}
                self.journal.append("seen", **records[saved.step])
        for step in sorted(records):
            self._queue.put(records[step])
        return len(records)

    def drain(self) -> None:
        """Wait until every checkpoint queued so far is done; re-raise the worker's error, if any."""
        self._queue.join()
        if self.error is not None:
            raise self.error

    def close(self) -> list[Commit]:
        """Wait for every queued checkpoint; re-raise the worker's error, if any."""
        self._queue.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.commits

    # -- the worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._prepare is not None:
                self.model_id = self._prepare()
            if self._last_version is not None:  # a resumed run continues the chain of parents
                self._parent = VersionRef(self.model_id, self._last_version)
            self._watch_unfinal()
        except BaseException as e:  # kept for close(); every checkpoint stays pending
            self._failed(e)
        while (record := self._queue.get()) is not _STOP:
            try:
                if self.error is None:  # after an error, what is left stays pending for --resume
                    self._register_across_reorgs(record)
                    self._settle()
            except BaseException as e:  # kept for close(); the journal keeps the work pending
                self._failed(e)
            finally:
                self._queue.task_done()
        try:
            if self.error is None and self.wait_final:
                self._settle(until_final=True)
        except BaseException as e:
            self._failed(e)
        self._queue.task_done()

    # -- reorgs: commits are watched until final ----------------------------------------------------------
    def _watch_unfinal(self) -> None:
        """On start: hand the journal's unfinal commits to the sender, which re-checks them from now on."""
        sender = getattr(self.client, "sender", None)
        if sender is None:
            return
        for record in self.journal.state().unfinal():
            entry = Sent.from_record(record)
            sender.watch(entry)
            self._watched[entry.nonce] = (int(record["step"]), entry)
        self._settle()

    def _register_across_reorgs(self, record: dict) -> None:
        """`_register`, again if it failed because a reorg took back what it read (the model's
        registration, the parent version) and the sender has just sent that again."""
        sender = getattr(self.client, "sender", None)
        for attempt in range(_REORG_RETRIES):
            self._settle()
            try:
                return self._register(record)
            except ModelregError:
                if sender is None or attempt == _REORG_RETRIES - 1:
                    raise
                with sender.locked():
                    if not sender.recheck():
                        raise

    def _settle(self, until_final: bool = False) -> None:
        """Re-check the commits not yet final: those a reorg took back are sent again (the same signed
        transaction: same nonce, same parent); journal where they land, and which are final."""
        sender = getattr(self.client, "sender", None)
        if sender is None or not (self._watched or sender.ledger):
            return
        deadline = time.monotonic() + sender.ops.receipt_timeout
        while True:
            with sender.locked():
                sender.recheck()
                sender.catch_up()  # what a reorg took back is mined again before the next commit reads it
            for nonce, (step, entry) in list(self._watched.items()):
                if entry.recommits and entry.block is not None and step not in self.recommitted:
                    self.recommitted.append(step)
                    record = {**entry.to_record(), "step": step, "tx": entry.tx_hash}
                    self.journal.append("recommitted", **record)
                    if self.on_reorg is not None:
                        self.on_reorg(record)
                if nonce not in sender.ledger:  # final: the sender stopped watching it
                    self.journal.append("final", step=step)
                    del self._watched[nonce]
            if not until_final or not self._watched:
                return
            if time.monotonic() > deadline:
                raise TransactionFailed(f"{len(self._watched)} commit(s) were not final within "
                                        f"{sender.ops.receipt_timeout:.0f} s; run again with --resume to keep watching")
            time.sleep(sender.ops.poll)

    def _failed(self, e: BaseException) -> None:
        self.error = e
        if self.on_error is not None:
            with contextlib.suppress(Exception):  # reporting must not hide the error, which close() raises
                self.on_error(e)

    def _register(self, record: dict) -> None:
        artifacts = {}
        tok = record.get("tokenizer_path")
        if tok and Path(tok).exists():
            artifacts["tokenizer"] = {"sha256": record.get("tokenizer_sha256"),
                                      "size": Path(tok).stat().st_size, "cid": self._pin(tok)}
        optimizer = record.get("optimizer_path")
        if optimizer and Path(optimizer).exists():
            # Pinned so that the next version's transcript, which starts from this state, can be replayed.
            sealed, cid = seal_and_add(optimizer, self.ipfs)  # one read for both
            artifacts["optimizer"] = {"cid": cid, "root": sealed.root}
        transcript = self._transcript(record["transcript"]) if record.get("transcript") else None
        commit = commit_checkpoint(
            self.client, self.ipfs, record["path"], model_id=self.model_id, model_name=self.model_name,
            parent=self._parent, dataset_root=self.dataset_root, step=record["step"],
            config=record.get("config"), metrics=record.get("metrics"),
            environment=record.get("environment"), artifacts=artifacts, code_revision=self._revision,
            transcript=transcript, follow_symlinks=self.follow_symlinks, privacy=record.get("privacy"))
        sender = getattr(self.client, "sender", None)
        sent = sender.entry_for(commit.tx) if sender is not None and commit.tx else None
        if sent is not None:  # not final yet: keep what it takes to send it again after a reorg
            self.journal.append("committed", **{**commit.to_dict(), **sent.to_record()})
            self._watched[sent.nonce] = (commit.step, sent)
        else:
            self.journal.append("committed", **commit.to_dict())
        self._parent = commit.ref
        self.commits.append(commit)
        if self.on_commit:
            self.on_commit(commit)


    def _pin(self, path: str) -> str:
        if path not in self._artifact_cids:
            self._artifact_cids[path] = self.ipfs.add(path)
        return self._artifact_cids[path]

    def _transcript(self, local: dict) -> dict:
        """The trainer's transcript of local paths as the manifest carries it: roots and CIDs, all pinned."""
        document = Path(local["batches_path"]).read_bytes()
        root = json.loads(document)["root"]
        leaves = load_batches(document, root)  # the file's leaves must give the root it names
        parent = None
        if local["parent"]:
            p = local["parent"]
            parent = {"step": p["step"], "weights_root": seal_checkpoint(p["weights_path"]).root,
                      "optimizer_root": seal_checkpoint(p["optimizer_path"]).root}
        transcript = {
            "format": TRANSCRIPT_FORMAT_DP if "dp" in local else TRANSCRIPT_FORMAT_DDP if "world_size" in local
            else TRANSCRIPT_FORMAT,
            "first_step": local["first_step"], "last_step": local["last_step"],
            "seed": local["seed"], "config_sha256": local["config_sha256"], "numerics": local["numerics"],
            "batches": {"root": root, "count": len(leaves), "cid": self.ipfs.add(local["batches_path"])},
            "parent": parent,
            "dataset_files": {name: self._pin(p) for name, p in sorted(local["dataset_files"].items())}}
        if "dp" in local:
            transcript["dp"] = local["dp"]
        if "world_size" in local:  # a DDP segment: its replay runs as many ranks
            transcript["world_size"] = local["world_size"]
        return transcript

