"""Replay audits: re-execute a version's committed stretch of training and compare the result with the chain.

A version's manifest, bound on-chain by its CID, carries a `modelreg-training-transcript-v1`
(formats.transcript). `replay` fetches every input it names (the parent's weights and optimizer
state, the tokenizer, the dataset's manifest and files, the batch leaves) and checks each against
the chain or against the root the transcript commits, before any step runs. It then hands a
`ReplayJob` to `execute`, the training package's re-execution (the library never imports
training: the CLI passes it in), which checks every replayed batch against its commitment. Last,
the replayed weights are compared with the version's: their root (bit-exact mode), or each
tensor within an absolute and relative distance (tolerance mode, for GPU runs, labelled so).

    report = replay(registry, "gpt-tiny", 3, execute)   # one segment: version 2 -> 3
    report.status                                       # "REPRODUCED" or "DIVERGED"

With sample=True the segment is chosen from the hash of the first block mined after the version
was committed, which the trainer could not know while training.
"""

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelreg import caps
from modelreg._atomic import temp_prefix, write_atomic
from modelreg.errors import ManifestInvalid, ModelregError, ReplayUnavailable
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import load_manifest
from modelreg.formats.paths import inside
from modelreg.formats.seal import seal_checkpoint, sha256_file
from modelreg.formats.transcript import BatchLeaf, config_sha256, load_batches
from modelreg.home import Home, HomeLike
from modelreg.records import VersionRef
from modelreg.service import audit

RECORD_FORMAT = "modelreg-replay-record-v1"


@dataclass(frozen=True)
class ReplayJob:
    """What the re-execution gets: local files, each already checked against the chain or the transcript."""

    config: dict
    first_step: int
    last_step: int
    batches: tuple[BatchLeaf, ...]
    data_dir: str
    dataset_manifest: dict
    tokenizer_path: str
    tokenizer_sha256: str
    parent_weights: str | None  # None: the segment starts from the seeded initialisation
    parent_optimizer: str | None
    numerics: dict  # as the transcript records them: thread count and kernel code paths
    device: str
    out_dir: str  # where the replayed weights file goes
    dp: dict | None = None  # a DP-SGD segment's transcript section: its steps re-clip and re-noise
    cache_dir: str | None = None  # token streams by (dataset root, tokenizer sha256): tokenized once
    world_size: int = 1  # a DDP segment: re-executed by as many ranks, each leaf holding all their samples

    def to_dict(self) -> dict:
        return {**asdict(self), "batches": [leaf.to_dict() for leaf in self.batches]}

    @classmethod
    def from_dict(cls, d: dict) -> "ReplayJob":
        return cls(**{**d, "batches": tuple(BatchLeaf.from_dict(b) for b in d["batches"])})


@dataclass(frozen=True)
class ReplayOutcome:
    """What the re-execution did: the replayed weights, or the first step whose batch differs."""

    steps_run: int
    weights_path: str | None = None
    step: int | None = None  # the first step whose batch differs from its commitment
    committed: dict | None = None  # that step's committed leaf
    replayed: dict | None = None
    process: str = "this process"  # or "a separate process with the recorded numerics"


@dataclass(frozen=True)
class Tolerance:
    """Per tensor: max |replayed - committed| must be <= atol + rtol * max |committed|."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class ReplayVerdict:
    """The outcome of replaying one version's segment (or re-deriving a derived version)."""

    model: str
    model_id: int
    version: int
    status: str  # REPRODUCED or DIVERGED
    mode: str  # "bit-exact" or "tolerance"
    first_step: int
    last_step: int
    step: int | None  # DIVERGED at this step
    reason: str
    tensors: tuple[dict, ...] = ()  # the differing tensors, first by name; in tolerance mode every distance
    steps_run: int = 0
    process: str = ""
    numerics: dict = field(default_factory=dict)
    tolerance: dict | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tensors": list(self.tensors)}


@dataclass(frozen=True)
class ReplayReport:
    """One or more verdicts; with sampling, which block chose them and what share of the steps they are."""

    verdicts: tuple[ReplayVerdict, ...]
    total_steps: int
    sampling: dict | None = None  # {"block", "hash", "candidates"}

    @property
    def status(self) -> str:
        return "REPRODUCED" if all(v.status == "REPRODUCED" for v in self.verdicts) else "DIVERGED"

    @property
    def share(self) -> float:
        replayed = sum(v.last_step - v.first_step + 1 for v in self.verdicts)
        return replayed / self.total_steps if self.total_steps else 0.0

    def to_dict(self) -> dict:
        return {"status": self.status, "share": self.share, "total_steps": self.total_steps,
                "sampling": self.sampling, "verdicts": [v.to_dict() for v in self.verdicts]}


class _Mismatch(Exception):
    """An input differs from what the chain or the transcript commits: a verdict, not an error."""


Execute = Callable[[ReplayJob], ReplayOutcome]


def replay(registry, model: str, version: int | None, execute: Execute, *, sample: bool = False,
           tolerance: Tolerance | None = None, device: str = "cpu", derive_engine=None) -> ReplayReport:
    """Replay `version` of `model` (default: the newest), or with sample=True one segment up to it
    chosen by a block hash; each verdict is recorded under the data directory. A derived version is
    re-derived from its source instead, by `derive_engine` (service.derive.replay_derivation)."""
    events = registry.events()
    entry = audit.find_model(events, model)
    versions = audit.history(events, entry["id"])
    if not versions:
        raise ReplayUnavailable(f"model {entry['name']!r} has no versions to replay")
    target = audit.find_version(events, entry, version) if version is not None else versions[-1]
    sampling = None
    chosen = [target]
    if sample:
        chosen, sampling = _sample(registry.client, entry, [v for v in versions if v["version"] <= target["version"]])
    verdicts = []
    for v in chosen:
        verdict = _replay_one(registry, events, entry, v, execute, tolerance, device, derive_engine)
        record(registry.home, registry.client, verdict)
        verdicts.append(verdict)
    _, manifest = audit.check_manifest(target, registry.ipfs.cat)
    total = (manifest or {}).get("step") or max(v.last_step for v in verdicts)
    return ReplayReport(tuple(verdicts), total, sampling)


def _sample(client, model: dict, candidates: list[dict]) -> tuple[list[dict], dict]:
    """One version, chosen by the hash of the first block after the newest candidate was committed
    (`client`: the `RegistryClient`, which reads the chain)."""
    block = max(v["block"] for v in candidates) + 1
    latest = client.head()
    if latest < block:
        raise ReplayUnavailable(f"sampling uses the hash of block {block}, the first after the newest version "
                                f"was committed, and the chain is at block {latest}")
    block_hash = client.block_hash(block)
    seed = hashlib.sha256(bytes.fromhex(block_hash[2:]) + model["id"].to_bytes(32, "big")).digest()
    chosen = candidates[int.from_bytes(seed, "big") % len(candidates)]
    return [chosen], {"block": block, "hash": block_hash, "candidates": [v["version"] for v in candidates],
                      "chosen": chosen["version"]}


def _replay_one(registry, events, model: dict, entry: dict, execute: Execute, tolerance: Tolerance | None,
                device: str, derive_engine=None) -> ReplayVerdict:
    t0 = time.time()
    status, manifest = audit.check_manifest(entry, registry.ipfs.cat)
    if status != "manifest verified":
        raise ReplayUnavailable(f"{model['name']} v{entry['version']}: {status}")
    if "derivation" in manifest:
        from modelreg.service.derive import replay_derivation

        return replay_derivation(registry, events, model, entry, manifest, derive_engine)
    transcript = manifest.get("transcript")
    if transcript is None:
        raise ReplayUnavailable(f"{model['name']} v{entry['version']} carries no training transcript "
                                f"(its manifest is a {manifest['manifest']}); only versions trained and "
                                "registered with a transcript can be replayed")
    mode = "tolerance" if tolerance else "bit-exact"
    base = {"model": model["name"], "model_id": model["id"], "version": entry["version"], "mode": mode,
            "first_step": transcript["first_step"], "last_step": transcript["last_step"],
            "numerics": transcript["numerics"], "tolerance": asdict(tolerance) if tolerance else None}
    if not tolerance and transcript["numerics"].get("device", "cpu") != "cpu":
        raise ReplayUnavailable(f"{model['name']} v{entry['version']} was trained on "
                                f"{transcript['numerics']['device']}, which no replay reproduces bit for bit")
    with tempfile.TemporaryDirectory(prefix=temp_prefix("replay."), dir=registry.home.scratch) as tmp:
        try:
            job = _prepare(registry, events, entry, manifest, Path(tmp), device)
        except _Mismatch as e:
            return ReplayVerdict(**base, status="DIVERGED", step=transcript["first_step"],
                           reason=f"{e}; no step was run", elapsed_s=time.time() - t0)
        outcome = execute(job)
        found = _compare(registry, entry, manifest, outcome, tolerance, Path(tmp))
    return ReplayVerdict(**base, **found, steps_run=outcome.steps_run, process=outcome.process,
                   elapsed_s=time.time() - t0)


def _prepare(registry, events, entry: dict, manifest: dict, tmp: Path, device: str) -> ReplayJob:
    """Fetch and check every input; _Mismatch names the first that differs from its commitment."""
    t = manifest["transcript"]
    if config_sha256(manifest["config"]) != t["config_sha256"]:
        raise _Mismatch("the manifest's training config does not hash to the transcript's config_sha256")
    if manifest["step"] != t["last_step"]:
        raise _Mismatch(f"the transcript ends at step {t['last_step']}, the manifest is step {manifest['step']}")
    parent_weights, parent_optimizer = _parent(registry, events, entry, t, tmp)
    tokenizer = manifest["artifacts"].get("tokenizer")
    if not tokenizer:
        raise _Mismatch("the manifest names no tokenizer")
    tokenizer_path = _get(registry, tokenizer["cid"], tmp / "tokenizer.json", "the tokenizer")
    if sha256_file(tokenizer_path)[1] != tokenizer["sha256"]:
        raise _Mismatch(f"the tokenizer pinned as {tokenizer['cid']} does not have the sha256 the manifest records")
    dataset_manifest, data_dir = _dataset(registry, events, entry, t, tmp)
    try:
        batches = load_batches(_cat(registry, t["batches"]["cid"], "the batch leaves"), t["batches"]["root"])
    except ManifestInvalid as e:
        raise _Mismatch(f"the batch leaves pinned as {t['batches']['cid']} are not the committed ones: {e}") from None
    outside = sorted(leaf.step for leaf in batches if not t["first_step"] <= leaf.step <= t["last_step"])
    if outside or len(batches) != t["batches"]["count"]:
        raise _Mismatch(f"the batch leaves hold {len(batches)} steps, {outside[:3]} outside the transcript's "
                        f"range {t['first_step']}..{t['last_step']}, where it commits {t['batches']['count']}")
    return ReplayJob(config=manifest["config"], first_step=t["first_step"], last_step=t["last_step"],
                     batches=batches, data_dir=str(data_dir), dataset_manifest=dataset_manifest,
                     tokenizer_path=str(tokenizer_path), tokenizer_sha256=tokenizer["sha256"],
                     parent_weights=parent_weights, parent_optimizer=parent_optimizer,
                     numerics=t["numerics"], device=device, out_dir=str(tmp / "replayed"), dp=t.get("dp"),
                     cache_dir=str(registry.home.token_cache), world_size=t.get("world_size", 1))


def _parent(registry, events, entry: dict, t: dict, tmp: Path) -> tuple[str | None, str | None]:
    """The parent's weights and optimizer state, checked against the chain's parent root and the transcript."""
    claimed, on_chain = t["parent"], entry["parent"]
    if claimed is None:
        if on_chain is not None:
            raise _Mismatch(f"the transcript starts from scratch, the chain names parent {on_chain}")
        if t["first_step"] != 1:
            raise _Mismatch(f"the transcript starts from scratch but at step {t['first_step']}")
        return None, None
    if on_chain is None:
        raise _Mismatch("the transcript starts from a parent, the chain names none")
    ref = VersionRef.from_dict(on_chain)
    parent = audit.find_version(events, next(m for m in audit.models(events) if m["id"] == ref.model_id), ref.version)
    if parent["weights_root"] != claimed["weights_root"]:
        raise _Mismatch(f"the transcript starts from weights root {claimed['weights_root']}, the chain's parent "
                        f"v{ref.version} has {parent['weights_root']}")
    if t["first_step"] != claimed["step"] + 1:
        raise _Mismatch(f"the transcript starts at step {t['first_step']}, its parent is step {claimed['step']}")
    status, parent_manifest = audit.check_manifest(parent, registry.ipfs.cat)
    if status != "manifest verified":
        raise ReplayUnavailable(f"the parent v{ref.version}: {status}")
    artifacts = parent_manifest["artifacts"]
    if "weights" not in artifacts or "optimizer" not in artifacts:
        raise ReplayUnavailable(f"the parent v{ref.version} pinned no weights or optimizer state")
    weights = _get(registry, artifacts["weights"]["cid"], tmp / "parent.safetensors", "the parent's weights")
    if seal_checkpoint(weights).root != parent["weights_root"]:
        raise _Mismatch("the parent's pinned weights do not have the parent's on-chain root")
    optimizer = _get(registry, artifacts["optimizer"]["cid"], tmp / "parent.optim.safetensors",
                     "the parent's optimizer state")
    root = seal_checkpoint(optimizer).root
    if root != claimed["optimizer_root"]:
        raise _Mismatch(f"the parent's optimizer state pinned as {artifacts['optimizer']['cid']} has root {root}, "
                        f"the transcript commits {claimed['optimizer_root']}")
    return str(weights), str(optimizer)


def _dataset(registry, events, entry: dict, t: dict, tmp: Path) -> tuple[dict, Path]:
    """The dataset manifest registered for the version's dataset root, and its files fetched and checked."""
    root = entry["dataset_root"]
    # The record the version named by id: another account's record of the same root is not it.
    registered = audit.datasets(events).get(entry["dataset_id"]) if root else None
    if registered is None:
        raise ReplayUnavailable(f"the version's dataset root {root} is not registered on this chain")
    dataset_manifest = load_manifest(_cat(registry, registered["manifest_cid"], "the dataset manifest"))
    if dataset_manifest["root"] != root:
        raise _Mismatch(f"the dataset manifest pinned for {root} has root {dataset_manifest['root']}")
    data_dir = tmp / "data"
    data_dir.mkdir()
    incoming = tmp / "incoming"  # each file lands here first, and moves into data/ once its hash matches
    incoming.mkdir()
    for i, leaf in enumerate(dataset_manifest["leaves"]):  # load_manifest checked every path (formats.paths)
        cid = t["dataset_files"].get(leaf["path"])
        if cid is None:
            raise _Mismatch(f"the transcript names no CID for dataset file {leaf['path']}")
        dest = inside(data_dir, leaf["path"])
        # The node cannot send more than the manifest declares (a DAG declaring more is refused unread).
        with caps.limited(max_bytes=leaf["size"], named="max_dataset_bytes"):
            fetched = _get(registry, cid, incoming / str(i), f"dataset file {leaf['path']}")
        if not fetched.is_file() or sha256_file(fetched) != (leaf["size"], leaf["sha256"]):
            raise _Mismatch(f"dataset file {leaf['path']} pinned as {cid} differs from the registered dataset")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, inside(data_dir, leaf["path"]))  # checked again: a directory made above is real
    return dataset_manifest, data_dir


def _compare(registry, entry: dict, manifest: dict, outcome: ReplayOutcome, tolerance: Tolerance | None,
             tmp: Path) -> dict:
    """status, step, reason and tensors of the verdict on what the re-execution returned."""
    if outcome.step is not None:
        if outcome.committed is None:
            reason = f"the run committed no batch for step {outcome.step}: it skipped the step"
        elif "params_sha256" in outcome.committed:
            reason = (f"the parameters after step {outcome.step} differ from the committed ones although its "
                      "batch matches: the step did not clip and noise the gradients as the transcript's DP-SGD "
                      "parameters claim")
        elif "epsilon" in outcome.committed:
            reason = (f"the transcript claims epsilon {outcome.committed['epsilon']:.6g}, but its own DP "
                      f"parameters give {outcome.replayed['epsilon']:.6g} by the recorded accountant"
                      f"{outcome.replayed.get('why', '')}")
        else:
            parts = [k for k in ("files", "offsets", "tokens") if outcome.committed[k] != outcome.replayed[k]]
            reason = (f"the batch of step {outcome.step} differs from its commitment ({', '.join(parts)}): "
                      "the run trained on other data than the registered dataset gives")
        return {"status": "DIVERGED", "step": outcome.step, "reason": reason}
    sealed = seal_checkpoint(outcome.weights_path)
    if tolerance is None:
        if sealed.root == entry["weights_root"]:
            return {"status": "REPRODUCED", "step": None,
                    "reason": f"the replayed weights have the committed root {sealed.root}"}
        diff = diff_tensors(manifest, sealed)
        names = [*diff.removed, *diff.added, *(c.name for c in diff.changed)]
        return {"status": "DIVERGED", "step": manifest["step"], "tensors": tuple({"name": n} for n in sorted(names)),
                "reason": f"the replayed weights differ from the committed ones in {len(names)} tensor(s), "
                          f"first {', '.join(sorted(names)[:3])}"}
    return _within(registry, manifest, outcome.weights_path, tolerance, tmp)


def _within(registry, manifest: dict, replayed_path: str, tol: Tolerance, tmp: Path) -> dict:
    from safetensors.numpy import load_file

    committed_path = _get(registry, manifest["artifacts"]["weights"]["cid"], tmp / "committed.safetensors",
                          "the committed weights")
    if seal_checkpoint(committed_path).root != manifest["root"]:
        raise ReplayUnavailable("the weights pinned for this version do not have its on-chain root")
    a, b = load_file(str(replayed_path)), load_file(str(committed_path))
    if set(a) != set(b):
        raise ReplayUnavailable(f"the replayed weights name other tensors: {sorted(set(a) ^ set(b))}")
    rows, outside = [], []
    for name in sorted(b):
        scale = float(abs(b[name]).max()) if b[name].size else 0.0
        max_abs = float(abs(a[name].astype("float64") - b[name].astype("float64")).max()) if b[name].size else 0.0
        rows.append({"name": name, "max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs})
        if max_abs > tol.atol + tol.rtol * scale:
            outside.append(name)
    if not outside:
        return {"status": "REPRODUCED", "step": None, "tensors": tuple(rows),
                "reason": f"every tensor within atol {tol.atol} + rtol {tol.rtol} of the committed one "
                          "(tolerance-based, not bit-exact)"}
    return {"status": "DIVERGED", "step": manifest["step"], "tensors": tuple(rows),
            "reason": f"{len(outside)} tensor(s) lie outside atol {tol.atol} + rtol {tol.rtol}, "
                      f"first {', '.join(outside[:3])} (tolerance-based)"}


def _cat(registry, cid: str, what: str) -> bytes:
    try:
        return audit.fetch_manifest(registry.ipfs.cat, cid)
    except ModelregError as e:
        raise ReplayUnavailable(f"{what} ({cid}) cannot be fetched from IPFS: {e}") from None


def _get(registry, cid: str, path: Path, what: str) -> Path:
    try:
        registry.ipfs.get(cid, path)
    except ModelregError as e:
        raise ReplayUnavailable(f"{what} ({cid}) cannot be fetched from IPFS: {e}") from None
    return path


# -- the local record -------------------------------------------------------------------------------
def _record_path(home: HomeLike, client) -> Path:
    return Home.of(home).replays(client.chain_id, client.address)


def recorded(home: HomeLike, client) -> dict[tuple[int, int], dict]:
    """The newest recorded verdict of each (model id, version) replayed from this data directory."""
    try:
        data = json.loads(_record_path(home, client).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if data.get("format") != RECORD_FORMAT:
        return {}
    return {(v["model_id"], v["version"]): v for v in data["verdicts"]}


def record(home: HomeLike, client, verdict: ReplayVerdict) -> None:
    """Keep the verdict, with when it was reached, as the newest for its version (a local file, no transaction)."""
    found = recorded(home, client)
    found[(verdict.model_id, verdict.version)] = {**verdict.to_dict(), "at": int(time.time())}
    path = _record_path(home, client)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"format": RECORD_FORMAT, "verdicts": [found[k] for k in sorted(found)]},
                                  indent=1, sort_keys=True))
