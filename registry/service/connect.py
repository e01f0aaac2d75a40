"""From a configuration to a working registry: the chain (devnet on demand), the signer, the contract, IPFS."""

import getpass
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelreg.chain import deployments
from modelreg.chain.client import RegistryClient, deployment_block
from modelreg.chain.client import connect as connect_chain
from modelreg.chain.signer import Signer
from modelreg.errors import (
    ChainIdMismatch,
    CidInvalid,
    ContractNotDeployed,
    DeploymentExists,
    InputInvalid,
    ModelNotFound,
    SignerInvalid,
)
from modelreg.ipfs.store import open_ipfs
from modelreg.records import Commit, VersionRef
from modelreg.service.audit import EventIndex, find_model, history
from modelreg.service.commit import commit_checkpoint
from modelreg.service.config import Config
from modelreg.service.verify import Verdict, verify_checkpoint


@dataclass
class Registry:
    """A connected registry: chain client, IPFS and the local event index of one data directory."""

    home: Path
    config: Config
    client: RegistryClient
    ipfs: object
    embedded_chain: bool
    read_up_to: int | None = None  # the block the last `events()` read up to

    def events(self) -> list[dict]:
        index = EventIndex(self.home, self.client)
        events = index.events()
        self.read_up_to = index.last_block
        return events

    def rebuild_index(self) -> list[dict]:
        return EventIndex(self.home, self.client).rebuild()

    def chain_info(self) -> dict:
        return {"chain_id": self.client.chain_id, "contract": self.client.address,
                "deployment_block": self.client.from_block,
                "latest_block": self.read_up_to if self.read_up_to is not None else self.client.w3.eth.block_number,
                "rpc": self.config.chain.rpc_url or "embedded devnet"}

    def block_time(self, block: int) -> int:
        """The timestamp (seconds since 1970, UTC) of block `block`."""
        return int(self.client.w3.eth.get_block(block)["timestamp"])

    def model_id(self, model: str | int) -> int:
        """The id of a model given by name or id, as the chain's events know it."""
        return model if isinstance(model, int) else find_model(self.events(), model)["id"]

    def commit(self, path: str | os.PathLike, model: str, *, parent: VersionRef | int | None = None,
               dataset_root: str | None = None, step: int | None = None, metrics: dict | None = None,
               config: dict | None = None) -> Commit:
        """Commit a checkpoint as the next version of `model`, registering the model if it is new.

        Args:
            path: a safetensors checkpoint.
            model: the model's name.
            parent: the version it was trained from: a `VersionRef`, or a version number of `model`.
            dataset_root: the root of a registered dataset it was trained on.
            step, metrics, config: recorded in the version's manifest.

        Returns:
            The `Commit` (`existing=True` when the model already held these weights).

        Example:
            >>> registry = modelreg.connect()
            >>> registry.commit("ckpt.safetensors", "my-gpt", metrics={"val_loss": 2.1}).version
            1
        """
        try:
            model_id = self.client.model_id(model)
        except ModelNotFound:
            model_id, _ = self.client.register_model(model, "")
        if isinstance(parent, int):
            parent = VersionRef(model_id, parent)
        return commit_checkpoint(self.client, self.ipfs, path, model_id=model_id, model_name=model,
                                 parent=parent, dataset_root=dataset_root, step=step, metrics=metrics,
                                 config=config)

    def history(self, model: str | int) -> list[dict]:
        """Every version of `model` in commit order, with revocations, read from contract events."""
        return history(self.events(), self.model_id(model))

    def verify(self, target: str, model: str | int, *, version: int | None = None,
               tensors: tuple[str, ...] = ()) -> Verdict:
        """Verify a file path, or a CID fetched from IPFS into a temporary file first.

        Returns a `Verdict`: `verdict.ok` is True when `target` is exactly a registered,
        unrevoked version of `model`; otherwise it names the differing tensors.
        """
        model_id = self.model_id(model)
        kwargs = {"version": version, "tensors": tuple(tensors), "fetch": self.ipfs.cat}
        if Path(target).exists():
            return verify_checkpoint(target, self.client, self.events(), model_id, **kwargs)
        _check_cid(target)
        with tempfile.TemporaryDirectory(dir=self.home) as tmp:
            path = Path(tmp) / "checkpoint.safetensors"
            self.ipfs.get(target, path)
            return verify_checkpoint(path, self.client, self.events(), model_id, **kwargs)


def _check_cid(target: str) -> None:
    """A TARGET that is no existing file must be a CID; say which of the two the user meant."""
    from modelreg.ipfs.unixfs import parse_cid

    if "/" in target or "." in target or os.sep in target:  # never in a CID's base32 or base58 text
        raise InputInvalid(f"file {target!r} does not exist")
    try:
        parse_cid(target)
    except CidInvalid as e:
        raise CidInvalid(f"no file named {target!r} exists, and {e}") from None


def connect(home: Path, config: Config, *, write: bool = False) -> Registry:
    """Connect as configured. The embedded devnet is started, and its contract deployed, on demand.

    With `config.chain.registry` set, that contract is used and nothing needs to be recorded in
    `home`: an RPC URL and an address are enough to read, and no signer is made unless `write`.
    """
    w3, rpc_url, embedded = _web3(home, config)
    signer = make_signer(config, rpc_url) if write else None
    if config.chain.registry:
        client = _client_at(w3, signer, home, config.chain.registry)
    else:
        try:
            client = RegistryClient.from_home(w3, signer, home)
        except ContractNotDeployed:
            if not embedded:
                raise
            # The embedded devnet is this data directory's own chain: deploying is part of starting it.
            # A devnet account pays, so that a read, or a signer the devnet never funded, still works.
            RegistryClient.deploy(w3, _dev_signer(0), home)
            client = RegistryClient.from_home(w3, signer, home)
    ipfs = open_ipfs(home, api=config.ipfs.api or None, profile=config.ipfs.profile)
    return Registry(home=Path(home), config=config, client=client, ipfs=ipfs, embedded_chain=embedded)


def _client_at(w3, signer: Signer | None, home: Path, address: str) -> RegistryClient:
    """The registry at `address`, its logs read from its deployment block: recorded, or found on the node."""
    chain_id = w3.eth.chain_id
    known = {d.address.lower(): d.block for d in deployments.recorded(home, chain_id)}
    block = known.get(address.lower())
    if block is None:
        block = deployment_block(w3, address)
    try:
        return RegistryClient.at(w3, signer, address, from_block=block)
    except ContractNotDeployed:
        raise ContractNotDeployed(f"no contract code at {address} on chain {chain_id}: the address is not a "
                                  "registry on this chain") from None


def deploy(home: Path, config: Config, *, force: bool = False) -> RegistryClient:
    """Deploy a new ModelRegistry on the configured chain and record it in the data directory.

    Refused (DeploymentExists) while the registry recorded for the chain still has code, unless
    `force`: a new registry starts an empty history. The replaced address stays recorded.
    """
    w3, rpc_url, _ = _web3(home, config)
    if not force:
        try:
            existing = RegistryClient.from_home(w3, None, home)
        except ContractNotDeployed:  # none recorded, or the chain was reset under it
            pass
        else:
            raise DeploymentExists(f"a ModelRegistry is already recorded for chain {existing.chain_id}: "
                                   f"{existing.address}, deployed in block {existing.from_block}; "
                                   "a new one would start with an empty history")
    return RegistryClient.deploy(w3, make_signer(config, rpc_url), home)


def _web3(home: Path, config: Config):
    """The configured chain (the embedded devnet, started if needed): web3, its URL, and whether embedded."""
    embedded = not config.chain.rpc_url
    if embedded:
        from modelreg.devnet.manager import ensure_running

        rpc_url = ensure_running(home, port=0)
    else:
        rpc_url = config.chain.rpc_url
    try:
        w3 = connect_chain(rpc_url, config.chain.chain_id or None)
    except ChainIdMismatch:
        if not embedded:
            raise
        from modelreg.devnet.chain import CHAIN_ID

        raise ChainIdMismatch(f"the embedded devnet is chain {CHAIN_ID}, not the configured chain "
                              f"{config.chain.chain_id}; pass --rpc-url for a node of chain "
                              f"{config.chain.chain_id}, or drop --chain-id") from None
    return w3, rpc_url, embedded


def make_signer(config: Config, rpc_url: str) -> Signer:
    s = config.signer
    if s.kind == "dev":
        return _dev_signer(s.dev_account)
    if s.kind == "env":
        return Signer.from_env(s.key_env)
    if not s.keystore:
        raise SignerInvalid("signer is 'keystore' but no keystore file is configured; pass --keystore PATH")
    password = os.environ.get(s.password_env)
    if password is None:
        try:
            password = getpass.getpass(f"Password for {s.keystore}: ")
        except EOFError:  # no terminal to ask on (CI, a pipe)
            raise SignerInvalid(f"no password for keystore {s.keystore}: set ${s.password_env}, "
                                "or run in a terminal to be asked") from None
    return Signer.from_keystore(s.keystore, password)


def _dev_signer(index: int) -> Signer:
    from modelreg.devnet.accounts import dev_accounts

    accounts = dev_accounts()
    if not 0 <= index < len(accounts):
        raise SignerInvalid(f"dev account {index} does not exist; use 0 to {len(accounts) - 1}")
    return Signer.from_key(accounts[index].key)
