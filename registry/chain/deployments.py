"""Where the ModelRegistry lives on each chain: <home>/deployments.json, keyed by chain id."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from modelreg._atomic import write_atomic
from modelreg.errors import ConfigInvalid, ContractNotDeployed

FILENAME = "deployments.json"
CONTRACT = "ModelRegistry"


@dataclass(frozen=True)
class Deployment:
    """One deployed contract: its address, the block and transaction that created it, and who sent it."""

    address: str
    block: int
    tx: str
    deployer: str


def _path(home: Path) -> Path:
    return Path(home) / FILENAME


def _load(home: Path) -> dict:
    path = _path(home)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigInvalid(f"{path} is not valid JSON ({e}); fix it or delete it and deploy again") from None


def record(home: Path, chain_id: int, deployment: Deployment) -> None:
    """Record `deployment` as the ModelRegistry of chain `chain_id`, replacing any earlier record."""
    data = _load(home)
    data.setdefault(str(chain_id), {})[CONTRACT] = asdict(deployment)
    path = _path(home)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def lookup(home: Path, chain_id: int) -> Deployment:
    """The recorded ModelRegistry of chain `chain_id`; ContractNotDeployed if there is none."""
    entry = _load(home).get(str(chain_id), {}).get(CONTRACT)
    if entry is None:
        raise ContractNotDeployed(f"no ModelRegistry is recorded for chain {chain_id} in {_path(home)}; "
                                  "deploy one with `modelreg deploy` (with the same --rpc-url)")
    try:
        return Deployment(**entry)
    except TypeError:
        raise ConfigInvalid(f"{_path(home)}: the entry for chain {chain_id} is malformed; "
                            "delete it and deploy again") from None
