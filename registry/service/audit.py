"""Audit: a model's history and lineage, rebuilt from contract events alone.

Everything here is a pure function of the event log (plus manifests fetched by CID), so any
auditor with an RPC endpoint gets the same answer. `EventIndex` caches the log under the data
directory for speed; it checks the last block hash it saw and rebuilds itself after a reorg, and
`rebuild()` starts it from nothing at any time.
"""

import json
from collections.abc import Callable
from pathlib import Path

from modelreg._atomic import write_atomic
from modelreg._hex import to_hex
from modelreg.errors import ManifestInvalid, ModelNotFound, VersionNotFound
from modelreg.records import VersionRef

INDEX_FORMAT = "modelreg-event-index-v1"
LOG_RANGE = 10_000  # blocks per eth_getLogs request


def normalize(event) -> dict:
    """One decoded log (web3's EventData) as plain JSON, bytes as 0x-hex."""
    args = {k: (to_hex(v) if isinstance(v, (bytes, bytearray)) else v) for k, v in event["args"].items()}
    return {"event": event["event"], "args": args, "block": int(event["blockNumber"]),
            "tx": to_hex(event["transactionHash"]), "log_index": int(event["logIndex"])}


class EventIndex:
    """The contract's event log, cached in <home>/index/<chain id>-<address>.json.

    `head()` and `block_hash(n)` say what the chain holds now; `fetch(first, last)` decodes the
    contract's logs in a block range. Only new blocks are fetched, so a read against an
    unchanged chain costs two quick RPC calls.
    """

    def __init__(self, home: Path, *, chain_id: int, address: str, from_block: int,
                 head: Callable[[], int], block_hash: Callable[[int], str],
                 fetch: Callable[[int, int], list]):
        self.path = Path(home) / "index" / f"{chain_id}-{address.lower()}.json"
        self.from_block, self.head, self.block_hash, self.fetch = from_block, head, block_hash, fetch
        self.last_block: int | None = None  # the block `events()` read up to

    @classmethod
    def of(cls, home: Path, client) -> "EventIndex":
        """The index of a `RegistryClient`'s contract, read through its web3."""
        return cls(home, chain_id=client.chain_id, address=client.address, from_block=client.from_block,
                   head=lambda: client.w3.eth.block_number,
                   block_hash=lambda n: to_hex(client.w3.eth.get_block(n)["hash"]),
                   fetch=lambda first, last: client.events(from_block=first, to_block=last))

    def events(self) -> list[dict]:
        """Every event up to the latest block, fetching only what the cache lacks."""
        cached = self._load()
        latest = self.head()
        self.last_block = latest
        start = self.from_block
        if cached and cached["last_block"] <= latest and self.block_hash(cached["last_block"]) == cached["last_hash"]:
            if cached["last_block"] == latest:
                return cached["events"]
            start = cached["last_block"] + 1
        events = list(cached["events"]) if cached and start > self.from_block else []
        for first in range(start, latest + 1, LOG_RANGE):  # public nodes cap eth_getLogs ranges
            last = min(first + LOG_RANGE - 1, latest)
            events += [normalize(e) for e in self.fetch(first, last)]
        self._save({"format": INDEX_FORMAT, "last_block": latest, "last_hash": self.block_hash(latest),
                    "events": events})
        return events

    def rebuild(self) -> list[dict]:
        self.path.unlink(missing_ok=True)
        return self.events()

    def _load(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if data.get("format") == INDEX_FORMAT else None

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data))


def _manifests():
    """The manifest module, loaded when a manifest is read: it brings the Merkle code (eth_abi), which a
    plain history or lineage read does without."""
    from modelreg.formats import manifest

    return manifest


def models(events: list[dict]) -> list[dict]:
    """Every registered model with its current owner, maintainers and version count."""
    found: dict[int, dict] = {}
    for e in events:
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
        elif name == "VersionCommitted":
            model["versions"] += 1
        elif name == "VersionRevoked":
            model["revoked"] += 1
    return sorted(found.values(), key=lambda m: m["id"])


def find_model(events: list[dict], name_or_id: str) -> dict:
    for model in models(events):
        if model["name"] == name_or_id or str(model["id"]) == str(name_or_id):
            return model
    raise ModelNotFound(f"no model named {name_or_id!r} is registered on this chain", model=name_or_id)


def history(events: list[dict], model_id: int) -> list[dict]:
    """The versions of one model in commit order, each with its revocation if any."""
    versions: dict[int, dict] = {}
    for e in events:
        a = e["args"]
        if a.get("modelId") != model_id:
            continue
        if e["event"] == "VersionCommitted":
            parent = (VersionRef(a["parentModel"], a["parentVersion"]).to_dict() if a["parentModel"] else None)
            dataset = a["datasetRoot"] if a["datasetId"] else None
            files = a["filesRoot"] if int(a["filesRoot"], 16) else None
            versions[a["version"]] = {"model": model_id, "version": a["version"],
                                      "weights_root": a["weightsRoot"], "tensor_count": a["tensorCount"],
                                      "files_root": files, "dataset_root": dataset,
                                      "dataset_id": a["datasetId"] or None,
                                      "parent": parent, "manifest_cid": a["manifestCid"],
                                      "committer": a["committer"], "block": e["block"], "tx": e["tx"],
                                      "revoked": None}
        elif e["event"] == "VersionRevoked" and a["version"] in versions:
            versions[a["version"]]["revoked"] = {"reason": a["reason"], "revoker": a["revoker"],
                                                 "replacement": a["replacement"] or None,
                                                 "block": e["block"], "tx": e["tx"]}
    return [versions[v] for v in sorted(versions)]


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
            for e in events if e["event"] == "DatasetRegistered"}


def lineage(events: list[dict], model_id: int) -> dict:
    """The model's versions, every ancestor and descendant across models, and their datasets."""
    names = {m["id"]: m["name"] for m in models(events)}
    all_versions = {(v["model"], v["version"]): v for m in names for v in history(events, m)}
    children: dict[tuple, list[tuple]] = {}
    for key, v in all_versions.items():
        if v["parent"]:
            children.setdefault(_ref(v["parent"]), []).append(key)
    keep = {k for k in all_versions if k[0] == model_id}
    frontier = list(keep)
    while frontier:  # walk up to ancestors and down to descendants, across models
        key = frontier.pop()
        v = all_versions[key]
        near = list(children.get(key, []))
        if v["parent"]:
            near.append(_ref(v["parent"]))
        for other in near:
            if other in all_versions and other not in keep:
                keep.add(other)
                frontier.append(other)
    nodes, edges, seen_datasets = [], [], {}
    for order, key in enumerate(sorted(keep, key=lambda k: all_versions[k]["block"])):
        v = all_versions[key]
        node_id = f"{names[key[0]]}:{key[1]}"
        nodes.append({"id": node_id, "label": f"{names[key[0]]} v{key[1]}", "row": names[key[0]],
                      "model_id": key[0], "version": key[1], "dataset_id": v["dataset_id"], "order": order, "revoked": bool(v["revoked"]), "weights_root": v["weights_root"]})
        if v["parent"]:
            parent = _ref(v["parent"])
            edges.append([f"{names[parent[0]]}:{parent[1]}", node_id])
        if v["dataset_root"]:
            ds = seen_datasets.setdefault(v["dataset_root"], f"dataset:{v['dataset_root']}")
            edges.append([ds, node_id])
    for root, ds in seen_datasets.items():
        nodes.append({"id": ds, "label": f"data {root[:10]}…", "row": "datasets", "order": -1,
                      "root": root})
    return {"nodes": nodes, "edges": edges}


def _ref(parent: dict) -> VersionRef:
    return VersionRef.from_dict(parent)


def check_manifest(version: dict, fetch: Callable[[str], bytes]) -> tuple[str, dict | None]:
    """Fetch a version's manifest and check it against the chain: status and the manifest.

    The manifest's leaves must give its roots (load_model recomputes them, and refuses a tensor
    name listed twice), and its weights root, tensor count and files root must be the ones the
    version committed: a manifest is used only once it is shown to be the version's.
    """
    try:
        manifest, model = _manifests().load_model(fetch(version["manifest_cid"]))
    except ManifestInvalid as e:
        return f"manifest invalid: {e}", None
    except Exception as e:  # a missing block or an unreachable daemon is a finding, not a crash
        return f"manifest unavailable: {e}", None
    files_root = model.files.root if model.files else None
    if manifest["root"] != version["weights_root"]:
        return "MISMATCH: manifest root differs from the chain", manifest
    if model.tensor_count != version["tensor_count"]:
        return (f"MISMATCH: the manifest lists {model.tensor_count} tensors, the chain says "
                f"{version['tensor_count']}"), manifest
    if files_root != version["files_root"]:
        return "MISMATCH: manifest files root differs from the chain", manifest
    return "manifest verified", manifest


def check_dataset_manifest(dataset: dict, fetch: Callable[[str], bytes]) -> tuple[str, dict | None]:
    """Fetch a dataset record's manifest and check that its leaves give the record's root."""
    try:
        manifest = _manifests().load_manifest(fetch(dataset["manifest_cid"]))
    except ManifestInvalid as e:
        return f"manifest invalid: {e}", None
    except Exception as e:  # as for versions: a finding, not a crash
        return f"manifest unavailable: {e}", None
    if manifest.get("manifest") != _manifests().DATASET_MANIFEST or manifest["root"] != dataset["root"]:
        return "MISMATCH: the manifest is not of this dataset root", None
    return "manifest verified", manifest


def find_root(client, weights_root) -> list[dict]:
    """Every version on the registry, across models, that committed exactly these weights, earliest
    first: who published them first. One eth_getLogs on the indexed weights root."""
    found, names = [], {}
    for e in client.commits_of_root(weights_root):
        a = normalize(e)["args"]
        model_id = a["modelId"]
        if model_id not in names:
            names[model_id] = client.get_model(model_id).name
        found.append({"model": model_id, "name": names[model_id], "version": a["version"],
                      "weights_root": a["weightsRoot"], "tensor_count": a["tensorCount"],
                      "committer": a["committer"], "manifest_cid": a["manifestCid"],
                      "block": int(e["blockNumber"]), "tx": to_hex(e["transactionHash"]),
                      "revoked": client.is_revoked(model_id, a["version"])})
    return found


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
    for e in events:
        if e["args"].get("modelId") != model_id or e["event"] in ("VersionCommitted", "VersionRevoked"):
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
    model = next(m for m in models(events) if m["id"] == model_id)
    versions = []
    for v in history(events, model_id):
        status, manifest = check_manifest(v, fetch)
        versions.append({**v, "verification": status,
                         "replay": replay_summary((replays or {}).get((model_id, v["version"]))),
                         "step": (manifest or {}).get("step"),
                         "metrics": (manifest or {}).get("metrics") or {},
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


def replay_summary(verdict: dict | None) -> str:
    """One line for a recorded replay verdict: its status, step, mode and steps, or "not replayed"."""
    if verdict is None:
        return "not replayed"
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
