"""Background commits for any training loop: each saved checkpoint is committed while training goes on.

    with modelreg.BackgroundCommitter("my-gpt", journal="out/commits.jsonl") as committer:
        for step in ...:
            model.save_pretrained(f"out/checkpoint-{step}")   # or save_file(...) of one file
            committer.submit(f"out/checkpoint-{step}", step=step, metrics={"loss": loss})

It is the registrar of `train-and-register`, for checkpoints another trainer writes: journaled
before `submit` returns (a local fsync, nothing else), committed in order by one worker thread,
each version with the previous one as its parent. Started again with the same journal after a
kill, it commits what is pending and continues the chain of parents. Under torchrun or
accelerate only rank 0 commits; on every other rank it does nothing, so the same script runs
everywhere.
"""

import logging
import os
from pathlib import Path

from modelreg.records import CheckpointSaved, Commit, VersionRef
from modelreg.service.commit import code_revision_of
from modelreg.service.journal import Journal
from modelreg.service.registrar import Registrar

log = logging.getLogger(__name__)


def rank() -> int:
    """This process's rank under torchrun or accelerate (both set RANK); 0 when run alone."""
    return int(os.environ.get("RANK", "0"))


class BackgroundCommitter:
    """Commit checkpoints of `model` in the background; `close()` waits and returns the commits."""

    def __init__(self, model: str, *, journal: str | os.PathLike, registry=None, dataset=None,
                 parent: VersionRef | None = None, follow_symlinks: bool = False,
                 home: str | os.PathLike | None = None, privacy: dict | None = None,
                 code_revision: str | None = None, **settings):
        """
        Args:
            model: the model's name; registered, with the signer as owner, if new.
            journal: the journal file; the same one resumes an interrupted run.
            registry: a connected `Registry`; by default `modelreg.connect(home, **settings)`.
            dataset: what the model is trained on: a dataset directory (sealed and registered
                first) or the root of a registered dataset, or None.
            parent: the version the first checkpoint continues from (a `VersionRef`, or a version
                number of `model`), or None.
            follow_symlinks: follow symbolic links in checkpoint directories.
            privacy: your DP trainer's guarantee, {"epsilon", "delta", and optionally "mechanism",
                "noise_multiplier", "sample_rate", "max_grad_norm", "steps", "accountant"}; every
                version records it as "claimed, not checkable by replay". `submit(privacy=...)`
                overrides it per checkpoint (the epsilon spent so far).
            code_revision: the revision of your training code, recorded in every version; by default
                the git commit of the working tree you run in (the current directory, `-dirty` with
                local changes), none outside a git checkout.
        """
        self.privacy = privacy
        self.commits: list[Commit] = []
        self._registrar = None
        if rank() != 0:
            return
        if registry is None:
            from modelreg.service.connect import open_registry  # modelreg.connect, without the upward import

            registry = open_registry(home, **settings)

        self.registry, self.model = registry, model
        # Before training starts, on the caller's thread: every check first (nothing written if one
        # fails), then at most two transactions, once.
        model_id, dataset_root, dataset_manifest = registry.check_commit(model, parent=parent, dataset=dataset)
        model_id, parent = registry.register_for_commit(model, model_id, parent, dataset_manifest)
        self._registrar = Registrar(client=registry.client, ipfs=registry.ipfs, journal=Journal(Path(journal)),
                                    model_name=model, model_id=model_id,
                                    dataset_root=dataset_root, parent=parent, follow_symlinks=follow_symlinks,
                                    on_commit=self._committed,
                                    code_revision=code_revision if code_revision is not None else code_revision_of())
        self._registrar.recover()

    def _committed(self, c: Commit) -> None:
        """One line per commit, through `logging` (the logger `modelreg.service.background`, INFO)."""
        if c.existing:
            log.info("modelreg: %s step %s was already version %s", self.model, c.step, c.version)
        else:
            log.info("modelreg: committed %s version %s (step %s, weights root %s, tx %s, block %s)",
                     self.model, c.version, c.step, c.root, c.tx, c.block)

    def submit(self, path: str | os.PathLike, *, step: int, metrics: dict | None = None,
               config: dict | None = None, environment: dict | None = None,
               privacy: dict | None = None) -> None:
        """Journal the checkpoint at `path` and queue its commit; returns at once. A no-op off rank 0."""
        if self._registrar is None:
            return
        claim = privacy if privacy is not None else self.privacy
        if claim is not None:
            from modelreg.formats.privacy import claimed

            claimed(claim)  # a bad claim fails here, on the caller's thread, before anything is journaled
        self._registrar.submit(CheckpointSaved(Path(path), step, dict(metrics or {}), dict(config or {}),
                                               dict(environment or {}), claim))

    def wait(self) -> None:
        """Block until every checkpoint submitted so far is committed; raise the worker's error, if any."""
        if self._registrar is not None:
            self._registrar.drain()

    def close(self) -> list[Commit]:
        """Wait for every queued checkpoint and stop the worker; the commits of this run, in order."""
        if self._registrar is not None:
            self.commits = self._registrar.close()
            self._registrar = None
        return self.commits

    def __enter__(self) -> "BackgroundCommitter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

