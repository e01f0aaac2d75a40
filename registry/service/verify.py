"""Verification: is this weights file exactly a registered version, and if not, which tensors differ?

The file is sealed locally; the answer rests on the chain alone. The event log (possibly from the
local cache) only suggests which version to check: the verdict re-reads that version's root and
revocation from the contract itself, and a root the log does not know is looked up on the node by
its indexed topic, so a tampered cache can neither fake a version nor hide one.
"""

from dataclasses import dataclass, field

from modelreg.errors import VersionNotFound
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import load_manifest
from modelreg.formats.seal import seal_checkpoint
from modelreg.service.audit import history

VERIFIED, MISMATCH, REVOKED = "VERIFIED", "MISMATCH", "REVOKED"


@dataclass(frozen=True)
class Verdict:
    status: str  # VERIFIED, MISMATCH or REVOKED
    model_id: int
    version: int | None  # the version matched, or the one compared against
    file_root: str
    chain_root: str | None
    tensors: int
    differences: dict = field(default_factory=dict)  # added / removed / changed tensor names
    revocation: dict | None = None
    tensor_proofs: dict = field(default_factory=dict)  # tensor name -> verifyTensor's answer
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == VERIFIED and all(self.tensor_proofs.values())

    def to_dict(self) -> dict:
        return {"status": self.status, "model_id": self.model_id, "version": self.version,
                "file_root": self.file_root, "chain_root": self.chain_root, "tensors": self.tensors,
                "differences": self.differences, "revocation": self.revocation,
                "tensor_proofs": self.tensor_proofs, "note": self.note}


def verify_checkpoint(path, client, events: list[dict], model_id: int, *, version: int | None = None,
                      tensors: tuple[str, ...] = (), fetch=None) -> Verdict:
    """Seal `path` and compare it with `version` of the model (or find which version it is)."""
    sealed = seal_checkpoint(path)
    versions = history(events, model_id)
    if version is None:
        matches = [v["version"] for v in versions if v["weights_root"] == sealed.root]
        if not matches and (found := client.find_version_by_root(model_id, sealed.root)):
            matches = [found["version"]]
        candidate = matches[-1] if matches else (versions[-1]["version"] if versions else None)
    else:
        candidate = version
    if candidate is None:
        raise VersionNotFound(f"model {model_id} has no versions yet, so no file can match it")
    record = client.get_version(model_id, candidate)  # the chain, not the cache, decides
    chain_root = record.weights_root  # 0x-hex, as VersionRecord gives it
    if chain_root != sealed.root:
        note = (f"matches no version of model {model_id}; compared with version {candidate}"
                if version is None else "")
        return Verdict(MISMATCH, model_id, candidate, sealed.root, chain_root, len(sealed.leaves),
                       differences=_differences(path, versions, candidate, chain_root, fetch), note=note)
    if record.tensor_count != len(sealed.leaves):
        # Same root, another count: the committer's tree is not what modelreg seals (a name twice?).
        return Verdict(MISMATCH, model_id, candidate, sealed.root, chain_root, len(sealed.leaves),
                       note=f"the root matches but version {candidate} says {record.tensor_count} tensors, "
                            f"the file has {len(sealed.leaves)}")
    proofs = {}
    for name in tensors:
        leaf, proof = sealed.proof(name)
        proofs[name] = bool(client.verify_tensor(model_id, candidate, leaf.values(), proof))
    if record.revoked:
        revocation = {"reason": record.revocation_reason, "revoker": record.revoker,
                      "replacement": record.replacement or None}
        return Verdict(REVOKED, model_id, candidate, sealed.root, chain_root, len(sealed.leaves),
                       revocation=revocation, tensor_proofs=proofs)
    return Verdict(VERIFIED, model_id, candidate, sealed.root, chain_root, len(sealed.leaves),
                   tensor_proofs=proofs)


def _differences(path, versions, candidate, chain_root, fetch) -> dict:
    """Which tensors differ, from the version's manifest; its root must match the chain to be used."""
    entry = next((v for v in versions if v["version"] == candidate), None)
    if entry is None or fetch is None:
        return {"unavailable": "the version's manifest is not known locally"}
    try:
        manifest = load_manifest(fetch(entry["manifest_cid"]))
    except Exception as e:  # a missing manifest weakens the report, it does not change the verdict
        return {"unavailable": f"manifest {entry['manifest_cid']} could not be read: {e}"}
    if manifest["root"] != chain_root:
        return {"unavailable": f"manifest {entry['manifest_cid']} does not match the on-chain root"}
    diff = diff_tensors(manifest, path)  # what the file changed relative to the registered version
    return {"added": list(diff.added), "removed": list(diff.removed),
            "changed": {c.name: list(c.parts) for c in diff.changed}}

