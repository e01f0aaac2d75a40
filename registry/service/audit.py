"""Audit: a model's history and lineage, rebuilt from contract events alone.

Everything here is a pure function of the event log (plus manifests fetched by CID), so any
auditor with an RPC endpoint gets the same answer. The log is a list of normalized events, or the
SQLite `EventIndex` of the data directory (service.index), which answers one model's questions
from that model's rows: each function reads only the events it needs, and none grows faster than
the events it reads.
"""

from collections import Counter
from collections.abc import Callable

from modelreg import caps
from modelreg.errors import CidInvalid, InputInvalid, ManifestInvalid, ModelNotFound, VersionNotFound
from modelreg.records import VersionRef, root_or_none
from modelreg.service.index import EventIndex, Events, normalize  # noqa: F401 (EventIndex lived here)


def _of_model(events, model_id: int):
    """The events of one model, in chain order: through the index when `events` is one."""
    if isinstance(events, Events):
        return events.of_models([model_id])
    return [e for e in events if e["args"].get("modelId") == model_id]


def _of_kinds(events, kinds: tuple[str, ...]):
    if isinstance(events, Events):
        return events.of_kinds(kinds)
    return [e for e in events if e["event"] in kinds]


def _counts(events, kinds: tuple[str, ...]):
    """(model id, kind, number) for the events of these kinds."""
    if isinstance(events, Events):
        return events.counts(kinds)
    return [(*key, n) for key, n in Counter((e["args"].get("modelId"), e["event"])
                                             for e in events if e["event"] in kinds).items()]


def _named(events, name_or_id: str):
    """The events of the models that `name_or_id` may name (all of them, for a plain list)."""
    return events.named(name_or_id) if isinstance(events, Events) else events


def _manifests():
    """The manifest module, loaded when a manifest is read: it brings the Merkle code (eth_abi), which a
    plain history or lineage read does without."""
    from modelreg.formats import manifest

    return manifest


_MODEL_KINDS = ("ModelRegistered", "MaintainerAdded", "MaintainerRemoved", "MaintainersCleared",
                "OwnershipTransferred")


def models(events: list[dict]) -> list[dict]:
    """Every registered model with its current owner, maintainers and version count."""
    found: dict[int, dict] = {}
    for e in _of_kinds(events, _MODEL_KINDS):
        a, name = e["args"], e["event"]
        if name == "ModelRegistered":
            found[a["modelId"]] = {"id": a["modelId"], "name": a["name"], "owner": a["owner"],
                                   "metadata": a["metadata"], "maintainers": [], "versions": 0,
                                   "revoked": 0, "block": e["block"], "tx": e["tx"]}
            continue
        model = found.get(a.get("modelId"))
        if model is None:
            continue
        if name == "MaintainerAdded":
            model["maintainers"].append(a["account"])
        elif name == "MaintainerRemoved":
            model["maintainers"].remove(a["account"])
        elif name == "MaintainersCleared":  # the model changed hands: the seller's maintainers are gone
            model["maintainers"] = []
        elif name == "OwnershipTransferred":
            model["owner"] = a["newOwner"]
    for model_id, kind, n in _counts(events, ("VersionCommitted", "VersionRevoked")):
        if model_id in found:
            found[model_id]["versions" if kind == "VersionCommitted" else "revoked"] += n
    return sorted(found.values(), key=lambda m: m["id"])


def model_ref(ref: str | int) -> tuple[str | None, int | None]:
    """(name, None) or (None, id) for a model reference: `#3` (or the int 3) is the id 3, anything
    else a name. Names and ids never mix: a stranger's model named "3" is not model #3."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return None, ref
    if not isinstance(ref, str):
        raise InputInvalid(f"a model is a name or #ID, not {ref!r}")
    if ref.startswith("#"):
        digits = ref[1:]
        if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
            raise InputInvalid(f"{ref!r} is not a model id; write # and the id, e.g. #3")
        return None, int(digits)
    return ref, None


def find_model(events: list[dict], ref: str | int) -> dict:
    """The model a reference names (see model_ref): by exact name, or by id when written #ID."""
    name, model_id = model_ref(ref)
    for model in models(_named(events, name) if name is not None else _of_model(events, model_id)):
        if (model["id"] == model_id) if name is None else (model["name"] == name):
            return model
    if name is None:
        raise ModelNotFound(f"no model has id #{model_id} on this chain", model=f"#{model_id}")
    hint = f" (for the model with id {name}, write #{name})" if name.isascii() and name.isdigit() else ""
    raise ModelNotFound(f"no model named {name!r} is registered on this chain{hint}", model=name)


def history(events: list[dict], model_id: int) -> list[dict]:
    """The versions of one model in commit order, each with its revocation if any.

    `stranger` is the committer's account when, at that block, it was neither the model's owner nor
    a maintainer (the contract refuses such a commit: only a contract that is not the real one shows
    one), else None.
    """
    versions: dict[int, dict] = {}
    writers = _Writers()
    for e in _of_model(events, model_id):
        a = e["args"]
        writers.follow(e)
        if e["event"] == "VersionCommitted":
            parent = (VersionRef(a["parentModel"], a["parentVersion"]).to_dict() if a["parentModel"] else None)
            dataset = a["datasetRoot"] if a["datasetId"] else None
            versions[a["version"]] = {"model_id": model_id, "version": a["version"],
                                      "weights_root": a["weightsRoot"], "tensor_count": a["tensorCount"],
                                      "files_root": root_or_none(a["filesRoot"]), "dataset_root": dataset,
                                      "dataset_id": a["datasetId"] or None,
                                      "parent": parent, "manifest_cid": a["manifestCid"],
                                      "committer": a["committer"], "block": e["block"], "tx": e["tx"],
                                      "revoked": None,
                                      "stranger": None if writers.may_write(a["committer"]) else a["committer"]}
        elif e["event"] == "VersionRevoked" and a["version"] in versions:
            versions[a["version"]]["revoked"] = {"reason": a["reason"], "revoker": a["revoker"],
                                                 "replacement": a["replacement"] or None,
                                                 "block": e["block"], "tx": e["tx"]}
    return [versions[v] for v in sorted(versions)]


class _Writers:
    """Who may write to one model as its events go by: the owner and the maintainers, and everyone
    who ever was either."""

    def __init__(self):
        self.owner, self.maintainers, self.ever = None, set(), set()

    def follow(self, e: dict) -> None:
        a, kind = e["args"], e["event"]
        if kind == "ModelRegistered":
            self.owner = a["owner"].lower()
        elif kind == "OwnershipTransferred":
            self.owner = a["newOwner"].lower()
        elif kind == "MaintainerAdded":
            self.maintainers.add(a["account"].lower())
        elif kind == "MaintainerRemoved":
            self.maintainers.discard(a["account"].lower())
        elif kind == "MaintainersCleared":
            self.maintainers.clear()
        self.ever |= self.maintainers | ({self.owner} if self.owner else set())

    def may_write(self, account: str) -> bool:
        return account.lower() == self.owner or account.lower() in self.maintainers


def find_version(events: list[dict], model: dict, version: int) -> dict:
    """One version of `model` (an entry of `models`), by number."""
    for v in history(events, model["id"]):
        if v["version"] == version:
            return v
    raise VersionNotFound(f"model {model['name']!r} has no version {version} (it has {model['versions']})",
                          model=model["name"])


def datasets(events: list[dict]) -> dict[int, dict]:
    """Every dataset record by id. One root may have several records, one per registrant: a version
    names the id it used, so whoever registered a root first has no say over anyone else's record."""
    return {e["args"]["datasetId"]: {"id": e["args"]["datasetId"], "root": e["args"]["root"],
                                     "manifest_cid": e["args"]["manifestCid"], "registrant": e["args"]["registrant"],
                                     "block": e["block"], "tx": e["tx"]}
            for e in _of_kinds(events, ("DatasetRegistered",))}


def lineage(events: list[dict], model_id: int) -> dict:
    """The model's versions, every ancestor and descendant across models, and their datasets.

    Linear in the events of the models it reaches: each model's history is read once, and a
    version's children are looked up, never searched for. A version in another model committed
    by an account that never held a role in this one carries that account as `stranger`.
    """
    book = _Versions(events)
    keep = {(model_id, v) for v in book.of(model_id)}
    frontier = list(keep)
    while frontier:  # walk up to ancestors and down to descendants, across models
        key = frontier.pop()
        v = book.get(key)
        near = list(book.children(key))
        if v["parent"]:
            near.append(_ref(v["parent"]))
        for other in near:
            if other not in keep and book.get(other) is not None:
                keep.add(other)
                frontier.append(other)
    trusted = book.writers(model_id).ever
    nodes, edges, seen_datasets = [], [], {}
    for order, key in enumerate(sorted(keep, key=lambda k: (book.get(k)["block"], k))):
        v = book.get(key)
        name = book.name(key[0])
        node_id = f"{name}:{key[1]}"
        stranger = v["stranger"] if key[0] == model_id else (
            None if v["committer"].lower() in trusted else v["committer"])
        nodes.append({"id": node_id, "label": f"{name} v{key[1]}", "row": name,
                      "model_id": key[0], "version": key[1], "dataset_id": v["dataset_id"], "order": order,
                      "revoked": bool(v["revoked"]), "weights_root": v["weights_root"],
                      "committer": v["committer"], "stranger": stranger})
        if v["parent"]:
            parent = _ref(v["parent"])
            edges.append([f"{book.name(parent[0])}:{parent[1]}", node_id])
        if v["dataset_root"]:
            ds = seen_datasets.setdefault(v["dataset_root"], f"dataset:{v['dataset_root']}")
            edges.append([ds, node_id])
    for root, ds in seen_datasets.items():
        nodes.append({"id": ds, "label": f"data {root[:10]}…", "row": "datasets", "order": -1,
                      "root": root})
    return {"nodes": nodes, "edges": edges}


class _Versions:
    """Every model's versions, each model read once when first asked for, and each version's
    children: from the index when `events` is one, else from one pass over the list."""

    def __init__(self, events):
        self.events, self._models = events, {}
        self._by_model: dict[int, list[dict]] | None = None
        self._children: dict[tuple, list[tuple]] | None = None
        if not isinstance(events, Events):
            self._by_model, self._children = {}, {}
            for e in events:
                model = e["args"].get("modelId")
                if model is not None:
                    self._by_model.setdefault(model, []).append(e)
                if e["event"] == "VersionCommitted" and e["args"]["parentModel"]:
                    a = e["args"]
                    self._children.setdefault((a["parentModel"], a["parentVersion"]), []).append(
                        (a["modelId"], a["version"]))

    def _model(self, model_id: int) -> tuple[str, dict[int, dict], _Writers]:
        if model_id not in self._models:
            own = (self._by_model.get(model_id, []) if self._by_model is not None
                   else list(_of_model(self.events, model_id)))
            writers = _Writers()
            for e in own:
                writers.follow(e)
            name = next((e["args"]["name"] for e in own if e["event"] == "ModelRegistered"), str(model_id))
            self._models[model_id] = (name, {v["version"]: v for v in history(own, model_id)}, writers)
        return self._models[model_id]

    def of(self, model_id: int) -> dict[int, dict]:
        return self._model(model_id)[1]

    def get(self, key: tuple) -> dict | None:
        return self.of(key[0]).get(key[1])

    def name(self, model_id: int) -> str:
        return self._model(model_id)[0]

    def writers(self, model_id: int) -> _Writers:
        return self._model(model_id)[2]

    def children(self, key: tuple) -> list[tuple]:
        if self._children is not None:
            return self._children.get(key, [])
        return self.events.children_of(*key)


def _ref(parent: dict) -> VersionRef:
    return VersionRef.from_dict(parent)


def check_manifest(version: dict, fetch: Callable[[str], bytes]) -> tuple[str, dict | None]:
    """Fetch a version's manifest and check it against the chain: status and the manifest.

    The manifest's leaves must give its roots (load_model recomputes them, and refuses a tensor
    name listed twice), and its weights root, tensor count and files root must be the ones the
    version committed: a manifest is used only once it is shown to be the version's.
    """
    try:
        manifest, model = _manifests().load_model(fetch_manifest(fetch, version["manifest_cid"]))
    except ManifestInvalid as e:
        return f"manifest invalid: {e}", None
    except Exception as e:  # a missing block or an unreachable daemon is a finding, not a crash
        return f"manifest unavailable: {e}", None
    if manifest["root"] != version["weights_root"]:
        return "MISMATCH: manifest root differs from the chain", manifest
    if model.tensor_count != version["tensor_count"]:
        return (f"MISMATCH: the manifest lists {model.tensor_count} tensors, the chain says "
                f"{version['tensor_count']}"), manifest
    if model.files_root != version["files_root"]:
        return "MISMATCH: manifest files root differs from the chain", manifest
    return "manifest verified", manifest


def fetch_manifest(fetch: Callable[[str], bytes], cid: str) -> bytes:
    """A manifest's bytes, fetched within the manifest size cap (a stranger's CID may name anything).

    The contract checks only a CID's length: the text must parse as one CID, not a path into a DAG."""
    from modelreg.ipfs.unixfs import parse_cid

    if not isinstance(cid, str) or cid != cid.strip():
        raise CidInvalid(f"{cid!r} is not a CID")
    parsed = str(parse_cid(cid))
    with caps.limited(max_bytes=caps.current().max_manifest_bytes, named="max_manifest_bytes"):
        return fetch(parsed)


def check_dataset_manifest(dataset: dict, fetch: Callable[[str], bytes]) -> tuple[str, dict | None]:
    """Fetch a dataset record's manifest and check that its leaves give the record's root."""
    try:
        manifest = _manifests().load_manifest(fetch_manifest(fetch, dataset["manifest_cid"]))
    except ManifestInvalid as e:
        return f"manifest invalid: {e}", None
    except Exception as e:  # as for versions: a finding, not a crash
        return f"manifest unavailable: {e}", None
    if manifest.get("manifest") != _manifests().DATASET_MANIFEST or manifest["root"] != dataset["root"]:
        return "MISMATCH: the manifest is not of this dataset root", None
    return "manifest verified", manifest


def find_root(events: list[dict], weights_root: str) -> list[dict]:
    """Every version on the registry, across models, that committed exactly these weights, in chain
    order (block, then position in the block): the first is the first on-chain commit. That is all
    the order proves: whoever saw a commit in the mempool could have been mined before it, so it
    names no author. From the index, one lookup on the root."""
    root = _root(weights_root)
    commits = (events.with_root(root) if isinstance(events, Events) else
               [e for e in events if e["event"] == "VersionCommitted" and e["args"]["weightsRoot"] == root])
    found, book = [], _Versions(events)
    for e in commits:
        a = e["args"]
        version = book.get((a["modelId"], a["version"]))
        found.append({"model_id": a["modelId"], "name": book.name(a["modelId"]), "version": a["version"],
                      "weights_root": a["weightsRoot"], "tensor_count": a["tensorCount"],
                      "committer": a["committer"], "manifest_cid": a["manifestCid"],
                      "block": e["block"], "log_index": e["log_index"], "tx": e["tx"], "revoked": bool(version and version["revoked"])})
    return found


def _root(weights_root: str) -> str:
    """A weights root as the events write it (0x and 64 lower-case hex digits), or InputInvalid."""
    text = weights_root.lower().removeprefix("0x") if isinstance(weights_root, str) else ""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InputInvalid(f"weights root must be 32 bytes as hex (0x and 64 hex digits), not {weights_root!r}")
    return "0x" + text


# The events that change who may write to a model, and how the report words each.
_ROLE_EVENTS = {
    "ModelRegistered": ("registered, owned by", "owner"),
    "OwnershipTransferStarted": ("ownership offered to", "newOwner"),
    "OwnershipTransferred": ("ownership accepted by", "newOwner"),
    "MaintainerAdded": ("maintainer added:", "account"),
    "MaintainerRemoved": ("maintainer removed:", "account"),
    "MaintainersCleared": ("all maintainers removed (ownership changed)", None),
}


def roles(events: list[dict], model_id: int) -> list[dict]:
    """Owners and maintainers over time: each change to who may write to the model, in chain order."""
    changes = []
    for e in _of_model(events, model_id):
        if e["event"] in ("VersionCommitted", "VersionRevoked"):
            continue
        words, key = _ROLE_EVENTS.get(e["event"], (e["event"], None))
        changes.append({"event": e["event"], "change": words, "account": e["args"].get(key) if key else None,
                        "block": e["block"], "tx": e["tx"]})
    return changes


def build_report(events: list[dict], model_id: int, chain: dict, fetch: Callable[[str], bytes], *,
                 block_time: Callable[[int], int] | None = None, tool: str = "",
                 links: dict | None = None, replays: dict | None = None) -> dict:
    """Everything an audit report shows, as plain data: the Markdown, JSON and HTML reports render it.

    `block_time(n)` gives block n's timestamp (seconds); `tool` names the program that read the chain;
    `links` holds the URL templates a reader follows ({"gateway": ..., "explorer": ...}); `replays` the
    recorded replay verdicts by (model id, version) (service.replay.recorded).
    """
    (model,) = models(_of_model(events, model_id))
    versions = []
    for v in history(events, model_id):
        status, manifest = check_manifest(v, fetch)
        versions.append({**v, "verification": status, "checkpoint_cid": _weights_cid(status, manifest),
                         "replay": replay_summary((replays or {}).get((model_id, v["version"]))),
                         "step": (manifest or {}).get("step"),
                         "metrics": (manifest or {}).get("metrics") or {},
                         "privacy": (manifest or {}).get("privacy"),
                         "note": (manifest or {}).get("note")})
    graph = lineage(events, model_id)
    known, used_by = datasets(events), {}
    for node in graph["nodes"]:  # the datasets of every version the lineage shows, in other models too
        if "model_id" in node and (dataset_id := node.get("dataset_id")):
            used_by.setdefault(dataset_id, []).append(node["label"])
    ds = []
    for dataset_id in sorted(used_by):
        entry = {**known[dataset_id], "used_by": used_by[dataset_id]}
        status, manifest = check_dataset_manifest(entry, fetch)
        entry["verification"] = status
        entry["files"] = len(manifest["leaves"]) if manifest else "unavailable"
        ds.append(entry)
    report = {"model": model, "chain": chain, "tool": tool, "links": links or {}, "versions": versions,
              "datasets": ds, "roles": roles(events, model_id), "lineage": graph}
    report["times"] = _times(report, block_time) if block_time else {}
    return report


def _weights_cid(status: str, manifest: dict | None) -> str | None:
    """The checkpoint's (or model directory's) CID, from a manifest shown to be the version's."""
    if status != "manifest verified":
        return None
    cid = ((manifest or {}).get("artifacts") or {}).get("weights", {}).get("cid")
    return cid if isinstance(cid, str) else None


def replay_summary(verdict: dict | None) -> str:
    """One line for a recorded replay verdict: its status, step, mode and steps, or "not replayed"."""
    if verdict is None:
        return "not replayed"
    if verdict["mode"] == "re-derived":
        return f"{verdict['status']} (re-derived from its source, recorded locally)"
    at = f" at step {verdict['step']}" if verdict["status"] == "DIVERGED" else ""
    return (f"{verdict['status']}{at} ({verdict['mode']}, steps {verdict['first_step']}..{verdict['last_step']}, "
            f"recorded locally)")


def _times(report: dict, block_time: Callable[[int], int]) -> dict[str, int]:
    """The timestamp of every block the report names, keyed by the block number as a string (JSON keys)."""
    blocks = {report["chain"]["latest_block"], report["model"]["block"]}
    for v in report["versions"]:
        blocks.add(v["block"])
        if v["revoked"]:
            blocks.add(v["revoked"]["block"])
    blocks |= {r["block"] for r in report["roles"]} | {d["block"] for d in report["datasets"] if "block" in d}
    return {str(b): block_time(b) for b in sorted(blocks)}
