"""Derivations: a version made from a verified source version by a named transform, committed with its edge.

`derive` checks the source against the chain (its manifest, then the weights it pins, or a local
copy; a revoked source is refused), hands a `DeriveJob` to the transform engine (the training
package's `modelreg.training.transforms`: the library never imports training, the caller passes
it), seals and pins what it wrote and commits it as a version of the target model whose parent is
the source and whose manifest carries a `modelreg-derivation-v1` (formats.derivation).
`replay_derivation` re-runs the transform from the verified source and compares the roots:
REPRODUCED, or DIVERGED naming each tensor and file that differs.

    derived = derive(registry, "gpt-tiny", 2, "cast", {"dtype": "fp16"}, to="gpt-tiny-fp16",
                     engine=modelreg.training.transforms)
    derived.commit.version, derived.derivation["fidelity"]["max_abs_logit_diff"]

Contract v2 has no field for an edge's kind: the kind ("derived by NAME") lives in the manifest,
which the version's manifest CID binds.
"""

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import (
    InputInvalid,
    ModelregError,
    ReplayUnavailable,
    SourceRevoked,
    SourceUnverified,
    TransformUnknown,
)
from modelreg.formats.derivation import derivation_record
from modelreg.formats.manifest import load_model
from modelreg.formats.model import SealedModel, seal_model
from modelreg.records import Commit, VersionRef, root_or_zero
from modelreg.service import audit


@dataclass(frozen=True)
class DeriveJob:
    """What the transform engine gets: the verified source, the transform, and the fidelity inputs."""

    transform: str
    params: dict
    source_path: str  # a safetensors file or a model directory, checked against the chain
    config: dict | None  # the source's training config: the project's GPT, or None
    out_dir: str
    measure: bool = True  # fidelity: on a derivation, not on a replay
    tokenizer_path: str | None = None  # with data_dir and dataset_manifest: validation perplexity
    tokenizer_sha256: str | None = None
    data_dir: str | None = None
    dataset_manifest: dict | None = None
    inputs: dict = field(default_factory=dict)  # input parameter -> local copy of the CID it names


@dataclass(frozen=True)
class DeriveOutcome:
    """The derived model's directory, its fidelity record (None when nothing could run it) and the tool versions."""

    path: str
    fidelity: dict | None
    tools: dict
    fidelity_s: float = 0.0  # the time measuring fidelity took (running both models)


@dataclass(frozen=True)
class Derived:
    """A committed derivation: the commit, the derivation record, and the time each part took."""

    commit: Commit
    derivation: dict
    path: str | None  # where the derived model was written, when kept (out_dir)
    timings: dict


def derive(registry, model: str, version: int | None, transform: str, params: dict | None = None, *, to: str,
           engine, out_dir: str | os.PathLike | None = None, local: str | os.PathLike | None = None) -> Derived:
    """Derive a version of `to` from `version` (default: the newest) of `model` by `transform`.

    `local` is a copy of the source to use instead of fetching it by CID; it is sealed and must have
    the source's on-chain roots (SourceUnverified otherwise). The derived model is written to
    `out_dir` (kept) or to a temporary directory.
    """
    params = engine.normalize(transform, dict(params or {}))  # an unknown name or parameter: before any work
    if out_dir is not None and Path(out_dir).exists() and (not Path(out_dir).is_dir() or any(Path(out_dir).iterdir())):
        # everything in the directory is sealed and committed: a stray file would join the derived version
        raise InputInvalid(f"{os.fspath(out_dir)} exists and is not an empty directory; name a new one")
    events = registry.events()
    source, manifest = _source(registry, events, model, version)
    timings = {}
    with tempfile.TemporaryDirectory(dir=registry.home.scratch) as tmp:
        t0 = time.perf_counter()
        path = _source_copy(registry, source, manifest, Path(tmp), local)
        inputs = _validation_inputs(registry, events, source, manifest, Path(tmp))
        extra = _inputs(registry, engine, transform, params, Path(tmp))
        timings["source_s"] = time.perf_counter() - t0
        out = Path(out_dir) if out_dir is not None else Path(tmp) / "derived"
        t0 = time.perf_counter()
        outcome = engine.run(DeriveJob(transform, params, str(path), manifest.get("config") or None, str(out),
                                       inputs=extra, **inputs))
        timings["transform_s"] = time.perf_counter() - t0 - outcome.fidelity_s
        timings["fidelity_s"] = outcome.fidelity_s
        record = derivation_record(source=_roots(source), name=transform, params=params, checkable=True,
                                   tools=outcome.tools, fidelity=outcome.fidelity)
        t0 = time.perf_counter()
        commit = _commit(registry, out, to, source, manifest, record)
        timings["commit_s"] = time.perf_counter() - t0
    return Derived(commit, record, str(out) if out_dir is not None else None, timings)


def commit_derived(registry, path: str | os.PathLike, model: str, source_model: str, source_version: int,
                   transform: str, params: dict | None, engine) -> Commit:
    """Commit `path`, derived elsewhere from `source_model` v`source_version` by `transform`, with its edge.

    A transform the engine knows is recorded as checkable (`audit replay` re-derives it); any other
    name is recorded as it is, and the version says it cannot be checked.
    """
    params = dict(params or {})
    try:
        params, checkable = engine.normalize(transform, params), True
    except TransformUnknown:
        checkable = False
    events = registry.events()
    source, manifest = _source(registry, events, source_model, source_version)
    record = derivation_record(source=_roots(source), name=transform, params=params, checkable=checkable,
                               tools={}, fidelity=None)
    return _commit(registry, Path(path), model, source, manifest, record)


def _source(registry, events, model: str, version: int | None) -> tuple[dict, dict]:
    """The source version and its manifest, checked against the chain; a revoked one is refused."""
    entry = audit.find_model(events, model)
    versions = audit.history(events, entry["id"])
    if version is None and not versions:
        raise SourceUnverified(f"model {entry['name']!r} has no versions to derive from")
    source = audit.find_version(events, entry, version) if version is not None else versions[-1]
    revoked = source["revoked"]
    if revoked:
        replacement = f"; version {revoked['replacement']} replaces it" if revoked["replacement"] else ""
        raise SourceRevoked(f"{entry['name']} v{source['version']} was revoked by {revoked['revoker']} in block "
                            f"{revoked['block']} (tx {revoked['tx']}): {revoked['reason']!r}{replacement}; "
                            "nothing is derived from a revoked version", model=entry["name"])
    status, manifest = audit.check_manifest(source, registry.ipfs.cat)
    if status != "manifest verified":
        raise SourceUnverified(f"{entry['name']} v{source['version']}: {status}")
    return source, manifest


def _roots(source: dict) -> dict:
    """The source's roots as a `modelreg-derivation-v1` record holds them: the chain's, zero for no files root."""
    return {"model_id": source["model_id"], "version": source["version"], "weights_root": source["weights_root"],
            "tensor_count": source["tensor_count"], "files_root": root_or_zero(source["files_root"])}


def _check(sealed: SealedModel, source: dict, what: str) -> None:
    got = (sealed.root, sealed.tensor_count, sealed.files_root)
    want = (source["weights_root"], source["tensor_count"], source["files_root"])
    if got != want:
        raise SourceUnverified(f"{what} has weights root {got[0]} ({got[1]} tensors, files root {got[2] or 'none'}); "
                               f"v{source['version']} commits {want[0]} ({want[1]} tensors, files root "
                               f"{want[2] or 'none'}); "
                               "nothing unverified is transformed")


def _source_copy(registry, source: dict, manifest: dict, tmp: Path, local) -> Path:
    """The source's weights, fetched by CID (or `local`), sealed and checked against the chain's roots."""
    if local is not None:
        _check(seal_model(local), source, f"the local copy {os.fspath(local)}")
        return Path(local)
    weights = (manifest.get("artifacts") or {}).get("weights") or {}
    if "cid" not in weights:
        raise SourceUnverified(f"v{source['version']}'s manifest names no weights CID; pass a local copy")
    path = tmp / "source"
    try:
        registry.ipfs.get(weights["cid"], path)
    except ModelregError as e:
        raise SourceUnverified(f"the source's weights ({weights['cid']}) cannot be fetched: {e}") from None
    _check(seal_model(path), source, f"the copy pinned as {weights['cid']}")
    return path


def _inputs(registry, engine, transform: str, params: dict, tmp: Path) -> dict[str, str]:
    """The transform's second inputs (a LoRA adapter), fetched by the CIDs its parameters name: every
    block is checked against its CID as it is read, so the CID recorded in the parameters binds the bytes."""
    found = {}
    for key in engine.inputs_of(transform):
        path = tmp / f"input-{key}"
        try:
            registry.ipfs.get(params[key], path)
        except ModelregError as e:
            raise SourceUnverified(f"--param {key}={params[key]} names no input this IPFS store can fetch: {e}; "
                                   "pin it first (modelreg ipfs add FILE)") from None
        found[key] = str(path)
    return found


def _validation_inputs(registry, events, source: dict, manifest: dict, tmp: Path) -> dict:
    """The tokenizer and dataset files of a version trained with a transcript, each checked; else nothing."""
    from modelreg.service import replay

    tokenizer = (manifest.get("artifacts") or {}).get("tokenizer")
    if not manifest.get("transcript") or not tokenizer:
        return {}
    try:
        path = replay._get(registry, tokenizer["cid"], tmp / "tokenizer.json", "the tokenizer")
        dataset_manifest, data_dir = replay._dataset(registry, events, source, manifest["transcript"], tmp)
    except (replay._Mismatch, ModelregError):
        return {}  # the fidelity record then has no perplexity
    return {"tokenizer_path": str(path), "tokenizer_sha256": tokenizer["sha256"], "data_dir": str(data_dir),
            "dataset_manifest": dataset_manifest}


def _commit(registry, path: Path, model: str, source: dict, manifest: dict, record: dict) -> Commit:
    from modelreg.service.commit import code_revision_of, commit_checkpoint
    from modelreg.service.ingest import seal_and_add

    sealed, cid = seal_and_add(path, registry.ipfs)  # sealed and pinned before any transaction
    model_id = registry.model_id_or_register(model, "")
    artifacts = {k: v for k, v in (manifest.get("artifacts") or {}).items() if k == "tokenizer"}
    return commit_checkpoint(registry.client, registry.ipfs, path, model_id=model_id, model_name=model,
                             parent=VersionRef(source["model_id"], source["version"]), step=manifest.get("step"),
                             config=manifest.get("config") or {}, artifacts=artifacts, derivation=record,
                             added=(sealed, cid), code_revision=code_revision_of())


# -- audit ------------------------------------------------------------------------------------------
def replay_derivation(registry, events, model: dict, entry: dict, manifest: dict, engine):
    """Re-derive `entry` from its verified source and compare: a `ReplayVerdict`."""
    from modelreg.service.replay import ReplayVerdict

    t0 = time.time()
    d = manifest["derivation"]
    name = d["transform"]["name"]
    if not d["checkable"] or engine is None or name not in engine.known():
        raise ReplayUnavailable(f"{model['name']} v{entry['version']} is {d['kind']}, a transform this modelreg "
                                "does not know: the edge is recorded but not checkable")
    step = manifest.get("step") or 0
    base = {"model": model["name"], "model_id": model["id"], "version": entry["version"], "mode": "re-derived",
            "first_step": step, "last_step": step, "process": "this process"}

    def diverged(reason: str, rows=()) -> ReplayVerdict:
        return ReplayVerdict(**base, status="DIVERGED", step=step, reason=reason, tensors=tuple(rows),
                       elapsed_s=time.time() - t0)

    claimed = VersionRef(d["source"]["model_id"], d["source"]["version"])
    if VersionRef.from_dict(entry["parent"]) != claimed:
        return diverged(f"the derivation names source {claimed}, the chain's parent edge {entry['parent']}")
    source_model = next((m for m in audit.models(events) if m["id"] == claimed.model_id), None)
    if source_model is None:
        return diverged(f"the derivation's source model {claimed.model_id} is not on this chain")
    source = audit.find_version(events, source_model, claimed.version)
    if _roots(source) != d["source"]:
        return diverged("the derivation records other source roots than the chain's for its source version")
    status, source_manifest = audit.check_manifest(source, registry.ipfs.cat)
    if status != "manifest verified":
        raise ReplayUnavailable(f"the source {source_model['name']} v{source['version']}: {status}")
    with tempfile.TemporaryDirectory(dir=registry.home.scratch) as tmp:
        path = _source_copy(registry, source, source_manifest, Path(tmp), None)
        params = d["transform"]["params"]
        outcome = engine.run(DeriveJob(name, params, str(path), source_manifest.get("config") or None,
                                       str(Path(tmp) / "rederived"), measure=False,
                                       inputs=_inputs(registry, engine, name, params, Path(tmp))))
        again = seal_model(outcome.path)
    _, committed = load_model(manifest)
    rows = differences(committed, again)
    if not rows and (again.root, again.files_root) == (entry["weights_root"], entry["files_root"]):
        return ReplayVerdict(**base, status="REPRODUCED", step=None, elapsed_s=time.time() - t0,
                       reason=f"re-running {name} {d['transform']['params']} on the verified source "
                              f"{source_model['name']} v{source['version']} gives the committed weights and files roots")
    names = ", ".join(r["name"] for r in rows[:3]) or "the roots"
    return diverged(f"re-running {name} on the verified source gives other content: {len(rows)} part(s) differ, "
                    f"first {names}", rows)


def differences(committed: SealedModel, again: SealedModel) -> list[dict]:
    """Each tensor and file whose leaf differs, is missing or is extra, by name."""
    rows = []
    for kind, a, b in (("tensor", committed.tensors.leaves, again.tensors.leaves),
                       ("file", committed.file_leaves, again.file_leaves)):
        left, right = {leaf.key: leaf for leaf in a}, {leaf.key: leaf for leaf in b}
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                what = "missing from the committed version" if key not in left else (
                    "not produced by the transform" if key not in right else "differs")
                rows.append({"name": key, "kind": kind, "difference": what})
    return rows


def derivation_edges(events, graph: dict, fetch, unverified: dict | None = None) -> dict[str, dict]:
    """For each version node of a lineage graph whose verified manifest records a derivation: its kind,
    transform, parameters, whether it is checkable, and its fidelity. A node with a parent whose manifest
    cannot be verified goes into `unverified` (node id -> status): its edge's kind is unknown."""
    found = {}
    for node in graph["nodes"]:
        if node.get("row") == "datasets":
            continue
        model = {"id": node["model_id"], "name": node["row"], "versions": "?"}
        version = audit.find_version(events, model, node["version"])
        status, manifest = audit.check_manifest(version, fetch)
        if status != "manifest verified":
            if version["parent"] and unverified is not None:
                unverified[node["id"]] = status
            continue
        d = manifest.get("derivation")
        if d:
            found[node["id"]] = {"kind": d["kind"], "transform": d["transform"]["name"],
                                 "params": d["transform"]["params"], "checkable": d["checkable"],
                                 "fidelity": d["fidelity"]}
    return found


def fidelity_summary(fidelity: dict | None) -> str:
    """One line: the probe's max |Δ logit| and the validation perplexities, or why there are none."""
    if not fidelity:
        return "not measured"
    text = f"max |Δlogit| {fidelity['max_abs_logit_diff']:.3g} on the probe batch"
    ppl = fidelity.get("perplexity")
    if ppl:
        text += f", validation perplexity {ppl['source']:.4g} -> {ppl['derived']:.4g}"
    return text
