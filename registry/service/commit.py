"""Commit one checkpoint: seal it, pin it and its manifest, and commit the version on-chain.

The one commit pipeline: `Registry.commit`, `modelreg.commit` and the background registrar of
`train-and-register` all call `commit_checkpoint`.
"""

import os
import subprocess
from pathlib import Path

from modelreg._hex import to_hex
from modelreg.errors import DuplicateRoot, ModelregError
from modelreg.formats.manifest import canonical_json, checkpoint_manifest
from modelreg.formats.seal import SealedCheckpoint
from modelreg.records import Commit, VersionRef
from modelreg.service.ingest import seal_and_add


def commit_checkpoint(client, ipfs, path: str | os.PathLike, *, model_id: int, model_name: str,
                      parent: VersionRef | None = None, dataset_root: str | None = None,
                      step: int | None = None, config: dict | None = None, metrics: dict | None = None,
                      environment: dict | None = None, artifacts: dict | None = None,
                      code_revision: str | None = None, sealed: SealedCheckpoint | None = None,
                      transcript: dict | None = None) -> Commit:
    """Seal `path`, pin it and its manifest, and commit it as the next version of `model_id`.

    Args:
        client: a `RegistryClient` with a signer that owns or maintains the model.
        ipfs: an IPFS store (`modelreg.ipfs.store.open_ipfs`).
        path: a safetensors checkpoint.
        parent: the version this one was trained from, or None.
        dataset_root: a registered dataset root, or None.
        sealed: the seal of `path` when the caller already has it (it is not recomputed).
        transcript: a `modelreg-training-transcript-v1` (formats.transcript); the manifest is then a v2.

    Returns:
        The `Commit`. A root the model already holds is not committed again: the existing version
        comes back with `existing=True`.
    """
    if sealed is None:  # one read of the file gives both the seal and the blocks
        model, checkpoint_cid = seal_and_add(path, ipfs)
        sealed = model.tensors
    else:
        checkpoint_cid = ipfs.add(str(path))
    metrics = dict(metrics or {})
    artifacts = {**(artifacts or {}), "weights": {"cid": checkpoint_cid}}  # where a replay fetches them
    lineage = {"transcript": transcript} if transcript is not None else {}
    manifest = checkpoint_manifest(
        sealed, model=model_name, step=step, parent=parent.to_dict() if parent else None,
        dataset_root=dataset_root, config=dict(config or {}), code_revision=code_revision or code_revision_of(),
        metrics=metrics, environment=dict(environment or {}), artifacts=artifacts, **lineage)
    manifest_cid = ipfs.add_bytes(canonical_json(manifest))
    try:
        version, receipt = client.commit_version(model_id, sealed.root, tensor_count=len(sealed.leaves),
                                                dataset_root=dataset_root, parent=parent, manifest_cid=manifest_cid)
    except DuplicateRoot:
        # The model holds this root already (committed before, perhaps by a killed attempt that never
        # recorded it): the chain has it, so it is done.
        found = client.find_version_by_root(model_id, sealed.root)
        if found is None:
            raise ModelregError(f"the chain refused {sealed.root} as a duplicate but no version "
                                f"of model {model_id} has it") from None
        return _existing(found, model_id, sealed.root, checkpoint_cid, step, metrics)
    return Commit(model_id=model_id, version=version, root=sealed.root, checkpoint_cid=checkpoint_cid,
                  manifest_cid=manifest_cid, tx=to_hex(receipt["transactionHash"]),
                  block=receipt["blockNumber"], step=step, val_loss=metrics.get("val_loss"))


def _existing(found: dict, model_id: int, root: str, checkpoint_cid: str, step, metrics: dict) -> Commit:
    return Commit(model_id=model_id, version=found["version"], root=root, checkpoint_cid=checkpoint_cid,
                  manifest_cid=found["manifest_cid"], tx=found["tx"], block=found["block"], step=step,
                  val_loss=metrics.get("val_loss"), existing=True)


def code_revision_of(start: Path | None = None) -> str:
    """The git commit of the code that trained, with `-dirty` when the tree has local changes."""
    where = str(start or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"modelreg {version('modelreg')} (no git checkout)"
    return rev + ("-dirty" if dirty else "")
