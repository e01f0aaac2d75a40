"""Commit one checkpoint, a safetensors file or a model directory: seal it, pin it (a directory as a
UnixFS directory) and its manifest, and commit the version (weights root, tensor count, files root).

The one commit pipeline: `Registry.commit`, `modelreg.commit` and the background registrar of
`train-and-register` all call `commit_checkpoint`.
"""

import os
import subprocess
from pathlib import Path

from modelreg._hex import to_hex
from modelreg.errors import DuplicateRoot, InputInvalid, ModelregError, TransactionFailed
from modelreg.formats import privacy as privacy_record
from modelreg.formats.manifest import canonical_json, checkpoint_manifest
from modelreg.formats.model import SealedModel
from modelreg.records import Commit, VersionRef, root_or_none
from modelreg.service.ingest import seal_and_add


def commit_checkpoint(client, ipfs, path: str | os.PathLike, *, model_id: int, model_name: str,
                      parent: VersionRef | None = None, dataset_root: str | None = None,
                      step: int | None = None, config: dict | None = None, metrics: dict | None = None,
                      environment: dict | None = None, artifacts: dict | None = None,
                      code_revision: str | None = None, note: str | None = None,
                      transcript: dict | None = None, follow_symlinks: bool = False,
                      added: tuple[SealedModel, str] | None = None, derivation: dict | None = None,
                      privacy: dict | None = None) -> Commit:
    """Seal `path`, pin it and its manifest, and commit it as the next version of `model_id`.

    Args:
        client: a `RegistryClient` with a signer that owns or maintains the model.
        ipfs: an IPFS store (`modelreg.ipfs.store.open_ipfs`).
        path: a safetensors file or a model directory (see `modelreg.formats.model`).
        parent: the version this one was trained from, or None.
        dataset_root: a registered dataset root, or None.
        note: free text recorded in the manifest.
        code_revision: the revision of the code that trained, recorded as given; None records none.
            The public entry points default it to `code_revision_of()`, the caller's working tree.
        transcript: a `modelreg-training-transcript-v1` (formats.transcript); the manifest is then a v2.
        follow_symlinks: follow symbolic links in a model directory (a Hugging Face cache snapshot).
        added: the seal of `path` and its pinned CID (`seal_and_add`) when the caller has them already.
        derivation: a `modelreg-derivation-v1` (formats.derivation) for a version derived from `parent`.
        privacy: a DP claim from your own trainer, {"epsilon", "delta", ...} (formats.privacy): recorded
            as "claimed, not checkable by replay". A transcript of modelreg's DP-SGD trainer records its own.

    Returns:
        The `Commit`. Content the model already holds is not committed again: the existing version
        comes back with `existing=True`.
    """
    dp = (transcript or {}).get("dp")
    if dp is not None and privacy is not None:
        raise InputInvalid("this checkpoint's transcript records DP-SGD itself; pass no privacy claim with it")
    # checked before anything is pinned or sent
    stated = privacy_record.from_transcript(dp) if dp is not None else \
        privacy_record.claimed(privacy) if privacy is not None else None
    # One read of each file gives both the seal and the blocks, pinned before the transaction.
    sealed, checkpoint_cid = added or seal_and_add(path, ipfs, follow_symlinks=follow_symlinks)
    pinned = [] if added else [checkpoint_cid]  # this call's own pins
    metrics = dict(metrics or {})
    artifacts = {**(artifacts or {}), "weights": {"cid": checkpoint_cid}}  # where a replay fetches them
    extra = {"transcript": transcript} if transcript is not None else {}
    if note:
        extra["note"] = note
    if derivation is not None:
        extra["derivation"] = derivation
    if stated is not None:
        extra["privacy"] = stated
    manifest = checkpoint_manifest(
        sealed, model=model_name, step=step, parent=parent.to_dict() if parent else None,
        dataset_root=dataset_root, config=dict(config or {}), code_revision=code_revision,
        metrics=metrics, environment=dict(environment or {}), artifacts=artifacts, **extra)
    manifest_cid = ipfs.add_bytes(canonical_json(manifest))
    pinned.append(manifest_cid)
    try:
        version, receipt = client.commit_version(
            model_id, sealed.root, tensor_count=sealed.tensor_count,
            files_root=sealed.files_root,
            dataset_root=dataset_root, parent=parent, manifest_cid=manifest_cid)
    except DuplicateRoot:
        # The model holds this content already (committed before, perhaps by a killed attempt that
        # never recorded it): the chain has it, so it is done.
        return _existing(client, model_id, sealed, checkpoint_cid, step, metrics)
    except NOT_COMMITTED:
        release_pins(ipfs, pinned)
        raise
    return Commit(model_id=model_id, version=version, root=sealed.root, checkpoint_cid=checkpoint_cid,
                  manifest_cid=manifest_cid, tx=to_hex(receipt["transactionHash"]),
                  block=receipt["blockNumber"], step=step, val_loss=metrics.get("val_loss"),
                  tensor_count=sealed.tensor_count, files_root=sealed.files_root)


# Refused before sending, or reverted: no version names the CIDs, so a commit takes back its own
# pins (a pin another add or commit made stays). Any other error (a lost connection) may hide a
# transaction that landed: its pins stay.
NOT_COMMITTED = (TransactionFailed, InputInvalid)


def release_pins(ipfs, cids: list[str]) -> None:
    """Take back one pin of each of `cids` (`EmbeddedIpfs.release`)."""
    release = getattr(ipfs, "release", None)  # a Kubo daemon's pins are its own to manage
    if release is not None:
        for cid in cids:
            release(cid)


def _existing(client, model_id: int, sealed: SealedModel, checkpoint_cid: str, step, metrics: dict) -> Commit:
    """The live version of `model_id` with exactly this content (weights root, tensor count, files root)."""
    for log in reversed(client.commits_of_root(sealed.root)):
        a = log["args"]
        same = (a["modelId"] == model_id and a["tensorCount"] == sealed.tensor_count
                and root_or_none(a["filesRoot"]) == sealed.files_root)
        if same and not client.get_version(model_id, a["version"]).revoked:
            return Commit(model_id=model_id, version=a["version"], root=sealed.root, checkpoint_cid=checkpoint_cid,
                          manifest_cid=a["manifestCid"], tx=to_hex(log["transactionHash"]),
                          block=log["blockNumber"], step=step, val_loss=metrics.get("val_loss"), existing=True,
                          tensor_count=sealed.tensor_count, files_root=sealed.files_root)
    raise ModelregError(f"the chain refused {sealed.root} as a duplicate but no live version "
                        f"of model {model_id} has this content") from None


def code_revision_of(start: str | os.PathLike | None = None) -> str | None:
    """The git commit of the working tree at `start` (default: the current directory, where the
    caller's code runs), with `-dirty` when the tree has local changes; None outside a git checkout
    or without git. Not where modelreg itself is installed: modelreg is not the code that trained.
    """
    try:
        where = str(start if start is not None else Path.cwd())  # a deleted directory: OSError
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")
