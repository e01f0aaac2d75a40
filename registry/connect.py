"""From a configuration to a working registry: the chain (devnet on demand), the signer, the contract, IPFS."""

import getpass
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from registry.audit import EventIndex
from registry.chain import RegistryClient
from registry.chain import connect as connect_chain
from registry.config import Config
from registry.errors import CidInvalid, ContractNotDeployed, InputInvalid, SignerInvalid
from registry.ipfs import open_ipfs
from registry.signer import Signer
from registry.verify import Verdict, verify_checkpoint


@dataclass
class Registry:
    """A connected registry: chain client, IPFS and the local event index of one data directory."""

    home: Path
    config: Config
    client: RegistryClient
    ipfs: object
    embedded_chain: bool

    def events(self) -> list[dict]:
        return EventIndex(self.home, self.client).events()

    def rebuild_index(self) -> list[dict]:
        return EventIndex(self.home, self.client).rebuild()

    def chain_info(self) -> dict:
        return {"chain_id": self.client.chain_id, "contract": self.client.address,
                "latest_block": self.client.w3.eth.block_number,
                "rpc": self.config.chain.rpc_url or "embedded devnet"}

    def deploy(self) -> dict:
        self.client = RegistryClient.deploy(self.client.w3, self.client.signer, self.home)
        return {"address": self.client.address, "chain_id": self.client.chain_id,
                "block": self.client.from_block}

    def verify(self, target: str, model_id: int, *, version: int | None = None,
               tensors: tuple[str, ...] = ()) -> Verdict:
        """Verify a file path, or a CID fetched from IPFS into a temporary file first."""
        kwargs = {"version": version, "tensors": tuple(tensors), "fetch": self.ipfs.cat}
        if Path(target).exists():
            return verify_checkpoint(target, self.client, self.events(), model_id, **kwargs)
        if not _looks_like_cid(target):
            raise InputInvalid(f"{target!r} is neither an existing file nor an IPFS CID")
        with tempfile.TemporaryDirectory(dir=self.home) as tmp:
            path = Path(tmp) / "checkpoint.safetensors"
            self.ipfs.get(target, path)
            return verify_checkpoint(path, self.client, self.events(), model_id, **kwargs)


def _looks_like_cid(text: str) -> bool:
    from registry.unixfs import parse_cid

    try:
        parse_cid(text)
    except CidInvalid:
        return False
    return True


def connect(home: Path, config: Config, *, write: bool = False) -> Registry:
    """Connect as configured. The embedded devnet is started, and its contract deployed, on demand."""
    embedded = not config.chain.rpc_url
    if embedded:
        from devnet.manager import ensure_running

        rpc_url = ensure_running(home, port=0)
    else:
        rpc_url = config.chain.rpc_url
    w3 = connect_chain(rpc_url, config.chain.chain_id or None)
    signer = make_signer(config, rpc_url) if write else None
    try:
        client = RegistryClient.from_home(w3, signer, home)
    except ContractNotDeployed:
        if not embedded:
            raise
        # The embedded devnet is this data directory's own chain: deploying is part of starting it.
        client = RegistryClient.deploy(w3, signer or make_signer(config, rpc_url), home)
    ipfs = open_ipfs(home, api=config.ipfs.api or None, profile=config.ipfs.profile)
    return Registry(home=Path(home), config=config, client=client, ipfs=ipfs, embedded_chain=embedded)


def make_signer(config: Config, rpc_url: str) -> Signer:
    s = config.signer
    if s.kind == "dev":
        from devnet.accounts import dev_accounts

        accounts = dev_accounts()
        if not 0 <= s.dev_account < len(accounts):
            raise SignerInvalid(f"dev account {s.dev_account} does not exist; use 0 to {len(accounts) - 1}")
        return Signer.from_key(accounts[s.dev_account].key)
    if s.kind == "env":
        return Signer.from_env(s.key_env)
    if not s.keystore:
        raise SignerInvalid("signer is 'keystore' but no keystore file is configured; pass --keystore PATH")
    password = os.environ.get(s.password_env)
    if password is None:
        password = getpass.getpass(f"Password for {s.keystore}: ")
    return Signer.from_keystore(s.keystore, password)
