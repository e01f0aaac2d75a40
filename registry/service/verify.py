"""Verification: is this model (a weights file or a model directory) exactly a registered version,
and if not, which tensors and files differ?

The model is sealed locally; the answer rests on the chain alone. A version is its weights root,
its tensor count and its files root: all three must match, so a changed config.json is a mismatch
even when every tensor matches, while a tensor moved to another shard is not. The event log
(possibly from the local cache) only suggests which version to check: the verdict re-reads that
version's roots and revocation from the contract itself, and a root the log does not know is
looked up on the node by its indexed topic, so a tampered cache can neither fake a version nor
hide one.
"""

from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import InputInvalid, VersionNotFound
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import load_model
from modelreg.formats.model import SealedModel, seal_model
from modelreg.service.audit import history, models

VERIFIED, MISMATCH, REVOKED = "VERIFIED", "MISMATCH", "REVOKED"


@dataclass(frozen=True)
class Verification:
    """The answer of `verify_checkpoint` (and `Registry.verify`): is the model a registered version?

    Roots are 0x-hex; a files root is None when there is no files tree (a single file, or a
    directory of shards alone), on either side, and null in `to_dict`.
    """

    status: str  # VERIFIED, MISMATCH or REVOKED
    model_id: int
    version: int | None  # the version matched, or the one compared against
    file_root: str  # the weights root of what was checked
    chain_root: str | None
    tensors: int
    differences: dict = field(default_factory=dict)  # added / removed / changed tensor names, and files
    revocation: dict | None = None
    tensor_proofs: dict = field(default_factory=dict)  # tensor name -> verifyTensor's answer
    file_proofs: dict = field(default_factory=dict)  # file path -> verifyFile's answer
    note: str = ""
    files_root: str | None = None  # the files root of what was checked (None: a single file)
    chain_files_root: str | None = None
    kind: str = "file"  # what was checked: "file" or "directory"
    model: str = ""  # the model's name
    actual_version: int | None = None  # on a mismatch: the version of this model the content is, if any
    earlier: tuple = ()  # other models' (or committers') earlier commits of the same weights root

    @property
    def ok(self) -> bool:
        return self.status == VERIFIED and all(self.tensor_proofs.values()) and all(self.file_proofs.values())

    def to_dict(self) -> dict:
        return {"status": self.status, "model": self.model, "model_id": self.model_id, "version": self.version,
                "kind": self.kind, "tensors_root": self.file_root, "chain_tensors_root": self.chain_root,
                "actual_version": self.actual_version, "earlier": list(self.earlier),
                # file_root and chain_root: the former names of tensors_root and chain_tensors_root
                "file_root": self.file_root, "chain_root": self.chain_root, "tensors": self.tensors,
                "files_root": self.files_root, "chain_files_root": self.chain_files_root,
                "differences": self.differences, "revocation": self.revocation,
                "tensor_proofs": self.tensor_proofs, "file_proofs": self.file_proofs, "note": self.note}


def _content(record) -> tuple[str, int, str | None]:
    return record.weights_root, record.tensor_count, record.files_root


def verify_checkpoint(path, client, events: list[dict], model_id: int, *, version: int | None = None,
                      tensors: tuple[str, ...] = (), files: tuple[str, ...] = (), fetch=None,
                      follow_symlinks: bool = False) -> Verification:
    """Seal `path` (a file or a model directory) and compare it with `version` of the model (or find
    which version it is). Each of `tensors` (names) and `files` (paths in the directory) is then
    proven on-chain too, by the contract's verifyTensor and verifyFile."""
    sealed = seal_model(path, follow_symlinks=follow_symlinks)
    content = (sealed.root, sealed.tensor_count, sealed.files_root)
    versions = history(events, model_id)
    names = {m["id"]: m["name"] for m in models(events)}
    name = names.get(model_id, f"#{model_id}")
    record = None
    if version is None:
        matches = [v["version"] for v in versions if v["weights_root"] == sealed.root]
        if not matches and (found := client.find_version_by_root(model_id, sealed.root)):
            matches = [found["version"]]
        # The chain, not the cache, decides; among versions with these weights, the one with these files.
        records = [client.get_version(model_id, v) for v in reversed(matches)]
        record = next((r for r in records if _content(r) == content), records[0] if records else None)
        candidate = record.version if record else (versions[-1]["version"] if versions else None)
    else:
        candidate = version
    if candidate is None:
        raise VersionNotFound(f"model {name!r} has no versions yet, so no model can match it")
    record = record or client.get_version(model_id, candidate)
    found = dict(model_id=model_id, version=candidate, file_root=sealed.root, chain_root=record.weights_root,
                 tensors=sealed.tensor_count, files_root=sealed.files_root,
                 chain_files_root=record.files_root, model=name,
                 kind="directory" if Path(path).is_dir() else "file")
    if _content(record) != content:
        note = ""
        if record.weights_root == sealed.root and record.tensor_count != sealed.tensor_count:
            # Same root, another count: the committer's tree is not what modelreg seals (a name twice?).
            note = (f"the root matches but version {candidate} says {record.tensor_count} tensors, "
                    f"the model has {sealed.tensor_count}")
        elif version is None:
            note = (f"its tensors match version {candidate} but its files do not"
                    if record.weights_root == sealed.root
                    else f"matches no version of model {name!r}; compared with version {candidate}")
        actual = _actual_version(client, model_id, versions, content) if version is not None else None
        if actual is not None:
            note = f"it is version {actual} of {name!r}, not version {candidate}"
        return Verification(MISMATCH, **found, note=note, actual_version=actual,
                       differences=_differences(sealed, versions, candidate, record, fetch))
    proofs = {}
    if files and sealed.files is None:
        raise InputInvalid(f"{path} has no files tree (a single file, or a directory of shards alone); "
                           "there is no file to prove")
    file_proofs = {}
    for name in files:
        leaf, proof = sealed.files.proof(name)
        file_proofs[name] = bool(client.verify_file(model_id, candidate, leaf.values(), proof))
    for name in tensors:
        leaf, proof = sealed.tensors.proof(name)
        proofs[name] = bool(client.verify_tensor(model_id, candidate, leaf.values(), proof))
    if record.revoked:
        revocation = {"reason": record.revocation_reason, "revoker": record.revoker,
                      "replacement": record.replacement or None,
                      # A replacement may have been revoked since: read now, from the contract.
                      "replacement_revoked": (client.is_revoked(model_id, record.replacement)
                                              if record.replacement else None)}
        return Verification(REVOKED, **found, revocation=revocation, tensor_proofs=proofs, file_proofs=file_proofs)
    return Verification(VERIFIED, **found, tensor_proofs=proofs, file_proofs=file_proofs,
                   earlier=_earlier(client, names, record, model_id))


def _actual_version(client, model_id: int, versions: list[dict], content: tuple) -> int | None:
    """The version of the model whose content (roots and count, re-read from the chain) this is, if any."""
    for v in reversed(versions):
        if v["weights_root"] == content[0]:
            r = client.get_version(model_id, v["version"])
            if _content(r) == content:
                return r.version
    return None


def _earlier(client, names: dict, record, model_id: int) -> tuple:
    """Commits of the same weights root before this version by another model or another account: whoever
    published these weights first (what `audit find-root` lists), so a VERIFIED does not hide them."""
    found = []
    for log in client.commits_of_root(record.weights_root):
        a = log["args"]
        if log["blockNumber"] >= record.block_number:  # in a block before this version's
            continue
        if a["modelId"] == model_id and a["committer"] == record.committer:  # this model's own history
            continue
        found.append({"model": names.get(a["modelId"], f"#{a['modelId']}"), "model_id": a["modelId"],
                      "version": a["version"], "committer": a["committer"], "block": log["blockNumber"]})
    return tuple(found)


def _differences(sealed: SealedModel, versions, candidate, record, fetch) -> dict:
    """Which tensors and files differ, from the version's manifest; its roots must match the chain to be used."""
    entry = next((v for v in versions if v["version"] == candidate), None)
    if entry is None or fetch is None:
        return {"unavailable": "the version's manifest is not known locally"}
    try:
        _, registered = load_model(fetch(entry["manifest_cid"]))
    except Exception as e:  # a missing manifest weakens the report, it does not change the verdict
        return {"unavailable": f"manifest {entry['manifest_cid']} could not be read: {e}"}
    if _content(record) != (registered.root, registered.tensor_count, registered.files_root):
        return {"unavailable": f"manifest {entry['manifest_cid']} does not match the on-chain roots"}
    diff = diff_tensors(registered, sealed)  # what the model changed relative to the registered version
    differences = {"added": list(diff.added), "removed": list(diff.removed),
                   "changed": {c.name: list(c.parts) for c in diff.changed}}
    if diff.files_added or diff.files_removed or diff.files_changed:
        differences["files"] = {"added": list(diff.files_added), "removed": list(diff.files_removed),
                                "changed": {c.path: list(c.parts) for c in diff.files_changed}}
    return differences
