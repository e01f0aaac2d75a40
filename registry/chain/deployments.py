"""Where the ModelRegistry lives on each chain: the data directory's deployments.json, keyed by chain id.

Per chain, "ModelRegistry" is the registry in use and "ModelRegistry.earlier" lists the ones it
replaced, oldest first, so that a deploy with --force never loses where the old history lives.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from modelreg._atomic import write_atomic
from modelreg.errors import ConfigInvalid, DeploymentNotRecorded
from modelreg.home import Home, HomeLike

CONTRACT = "ModelRegistry"
EARLIER = f"{CONTRACT}.earlier"


@dataclass(frozen=True)
class Deployment:
    """One deployed contract: its address, the block and transaction that created it, and who sent it."""

    address: str
    block: int
    tx: str
    deployer: str


def location(home: HomeLike) -> Path:
    """The file of `home` that records its deployments, as messages name it."""
    return Home.of(home).deployments


def _load(home: HomeLike) -> dict:
    path = location(home)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigInvalid(f"{path} is not valid JSON ({e}); fix it or delete it and deploy again") from None


def record(home: HomeLike, chain_id: int, deployment: Deployment) -> None:
    """Record `deployment` as the ModelRegistry of chain `chain_id`; the one it replaces moves to the earlier list."""
    data = _load(home)
    entry = data.setdefault(str(chain_id), {})
    current = entry.get(CONTRACT)
    if current is not None and current.get("address") != deployment.address:
        entry.setdefault(EARLIER, []).append(current)
    entry[CONTRACT] = asdict(deployment)
    write_atomic(location(home), json.dumps(data, indent=2, sort_keys=True) + "\n")


def lookup(home: HomeLike, chain_id: int) -> Deployment:
    """The recorded ModelRegistry of chain `chain_id`; DeploymentNotRecorded if there is none."""
    entry = _load(home).get(str(chain_id), {}).get(CONTRACT)
    if entry is None:
        raise DeploymentNotRecorded(f"no ModelRegistry is recorded for chain {chain_id} in {location(home)}")
    return _deployment(home, chain_id, entry)


def recorded(home: HomeLike, chain_id: int) -> list[Deployment]:
    """Every ModelRegistry recorded for chain `chain_id`, oldest first, the one in use last."""
    entry = _load(home).get(str(chain_id), {})
    found = [*entry.get(EARLIER, []), *([entry[CONTRACT]] if CONTRACT in entry else [])]
    return [_deployment(home, chain_id, e) for e in found]


def _deployment(home: HomeLike, chain_id: int, entry: dict) -> Deployment:
    try:
        return Deployment(**entry)
    except TypeError:
        raise ConfigInvalid(f"{location(home)}: the entry for chain {chain_id} is malformed; "
                            "delete it and deploy again") from None
