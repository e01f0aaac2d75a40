"""From a configuration to a working registry: the chain (devnet on demand), the signer, the contract, IPFS."""

import getpass
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from modelreg._atomic import temp_prefix
from modelreg.chain import deployments
from modelreg.chain.endpoints import Endpoints
from modelreg.chain.rpc import JsonRpc
from modelreg.errors import (
    ChainIdMismatch,
    CidInvalid,
    ContractNotDeployed,
    DeploymentExists,
    InputInvalid,
    ModelNotFound,
    SignerInvalid,
)
from modelreg.home import Home, HomeLike, resolve_home, send_lock, setup_lock
from modelreg.records import Commit, VersionRef
from modelreg.service.audit import find_model, history
from modelreg.service.config import (
    FINALITY_TAGS,
    PUBLIC_CHAIN_CONFIRMATIONS,
    Config,
    load_config,
    overrides_of,
)
from modelreg.service.index import EventIndex, Events

log = logging.getLogger(__name__)
_LOCAL_CHAIN_IDS = (31337, 1337)  # anvil's and hardhat's default, geth --dev's
_log = logging.getLogger("modelreg").warning  # what a re-send or a fallback says when no one listens


class Registry:
    """A connected registry: the chain, the contract, IPFS and the local event index of one data directory.

    The contract client (web3) and the IPFS store are built on first use: a read whose event
    index is up to date needs neither, and answers with two quick JSON-RPC calls.
    """

    def __init__(self, home: HomeLike, config: Config, *, rpc_url: "str | Endpoints", chain_id: int,
                 embedded_chain: bool, client=None, signer=None, notify=None):
        self.notify = notify or _log
        self.endpoints = rpc_url if isinstance(rpc_url, Endpoints) else Endpoints(
            rpc_url, timeout=config.network.timeout, notify=self.notify)
        self.home, self.config, self.rpc_url, self.chain_id = Home.of(home), config, self.endpoints.url, chain_id
        self.embedded_chain, self.rpc, self._signer = embedded_chain, JsonRpc(self.endpoints), signer
        self.read_up_to: int | None = None  # the block the last `events()` read up to
        if client is not None:
            self.client = client

    @cached_property
    def client(self):
        """The `RegistryClient` of the configured (`--registry`) or recorded contract, checked before
        use (web3 is imported here, on first use)."""
        from modelreg.chain.client import RegistryClient
        from modelreg.chain.client import connect as connect_chain

        w3 = connect_chain(self.endpoints)
        if self.config.chain.registry:
            client = _client_at(w3, self._signer, self.home, self.config.chain.registry)
        else:
            client = RegistryClient.from_home(w3, self._signer, self.home)
        client.ops = self.chain_ops()
        return client

    def chain_ops(self, *, wait: bool = False):
        """How this registry sends and waits for transactions (modelreg.chain.sending.ChainOps), from
        the configuration: confirmations or a finality tag, the fee cap, the nonce lock in the data
        directory, and `notify` for each re-send."""
        from modelreg.chain.sending import ChainOps

        chain, (confirmations, tag) = self.config.chain, self.confirmations()
        return ChainOps(confirmations=confirmations, finality=tag, wait=wait, resend_after=chain.resend_after,
                        max_fee_gwei=chain.max_fee_gwei or None,
                        # Waiting for `finalized` takes about two epochs (13 minutes) on a beacon chain.
                        receipt_timeout=max(1800.0 if wait and tag else 120.0, self.config.network.timeout),
                        lock_dir=self.home.nonce_locks, notify=self.notify)

    def confirmations(self) -> tuple[int, str | None]:
        """(blocks, None) or (0, "safe" | "finalized"): when a version counts as final here. "auto" is
        0 blocks on a local devnet (the embedded one, anvil, geth --dev), which reorgs only when told."""
        value = self.config.chain.confirmations
        if value in FINALITY_TAGS:
            return 0, value
        if value == "auto":
            local = self.embedded_chain or self.chain_id in _LOCAL_CHAIN_IDS
            return (0 if local else PUBLIC_CHAIN_CONFIRMATIONS), None
        return int(value), None

    def depth(self, block: int) -> dict:
        """How deep block `block` is now: `confirmations` (the head block is 1), the number `required`
        (or the finality tag), and whether it is `final`."""
        return self.depths([block])[0]

    def depths(self, blocks: list[int]) -> list[dict]:
        """`depth` of each block, from one read of the head (and of the finality tag)."""
        required, tag = self.confirmations()
        head = self.rpc.block_number()
        tagged = int(self.rpc.call("eth_getBlockByNumber", tag, False)["number"], 16) if tag else None
        return [{"confirmations": max(0, head - b + 1), "required": tag or required,
                 "final": b <= tagged if tag else head - b + 1 >= required} for b in blocks]

    @cached_property
    def ipfs(self):
        from modelreg.ipfs.store import open_ipfs

        ipfs = self.config.ipfs
        return open_ipfs(self.home, api=ipfs.api or None, profile=ipfs.profile,
                         timeout=self.config.network.timeout, cache_bytes=ipfs.cache_mib << 20)

    def _index(self) -> EventIndex:
        deployment = None if "client" in self.__dict__ else self._recorded()
        if deployment is None:
            return EventIndex.of(self.home, self.client)
        return EventIndex(self.home, chain_id=self.chain_id, address=deployment.address,
                          from_block=deployment.block, head=self.rpc.block_number, block_hash=self.rpc.block_hash,
                          fetch=lambda first, last: self.client.events(from_block=first, to_block=last))

    def _recorded(self):
        """The recorded deployment of the contract in use, if its address and first block are known
        without web3; else None."""
        if not self.config.chain.registry:
            return deployments.lookup(self.home, self.chain_id)
        wanted = self.config.chain.registry.lower()
        return next((d for d in deployments.recorded(self.home, self.chain_id) if d.address.lower() == wanted), None)

    def events(self) -> Events:
        """The registry's events up to the latest block, from the data directory's index (brought up to date)."""
        index = self._index()
        events = index.events()
        self.read_up_to = index.last_block
        return events

    def rebuild_index(self) -> Events:
        return self._index().rebuild()

    def chain_info(self) -> dict:
        latest = self.read_up_to if self.read_up_to is not None else self.rpc.block_number()
        return {"chain_id": self.chain_id, "contract": self.client.address,
                "deployment_block": self.client.from_block, "latest_block": latest,
                "rpc": self.config.chain.rpc_url or "embedded devnet"}

    def block_time(self, block: int) -> int:
        """The timestamp (seconds since 1970, UTC) of block `block`."""
        return int(self.rpc.call("eth_getBlockByNumber", hex(block), False)["timestamp"], 16)

    def model_id(self, model: str | int) -> int:
        """The id of a model given by name, or by id as an int or "#ID" (service.audit.model_ref)."""
        return model if isinstance(model, int) else find_model(self.events(), model)["id"]

    def commit(self, path: str | os.PathLike, model: str, *, parent: VersionRef | int | None = None,
               dataset: str | os.PathLike | None = None, step: int | None = None, metrics: dict | None = None,
               config: dict | None = None, note: str | None = None, follow_symlinks: bool = False,
               privacy: dict | None = None, wait: bool = False, dataset_root: str | None = None,
               code_revision: str | None = None) -> Commit:
        """Commit a model as the next version of `model`, registering the model if it is new.

        Every check runs before anything is written (`check_commit`): a bad parent, dataset, model
        name or file, or a signer without rights or funds, leaves the chain, the pins and the data
        directory as they were.

        Args:
            path: a safetensors file, or a model directory (shards, index, config, tokenizer, ...).
            model: the model's name.
            parent: the version it was trained from: a `VersionRef`, or a version number of `model`.
            dataset: what it was trained on: a dataset directory (sealed and registered) or the root
                of a registered dataset (see `register_dataset`). The same keyword as
                `BackgroundCommitter` and `RegistryCallback`.
            step, metrics, config, note: recorded in the version's manifest.
            follow_symlinks: follow symbolic links in a directory (a Hugging Face cache snapshot).
            privacy: a DP guarantee from your own trainer, {"epsilon", "delta", ...}: recorded in the
                manifest as "claimed, not checkable by replay" (formats.privacy).
            dataset_root: deprecated spelling of `dataset`.
            code_revision: the revision of the code that trained it, recorded in the manifest; by
                default the git commit of the current directory's working tree (`-dirty` with local
                changes), none outside a git checkout.
            wait: return only once the commit is final (`confirmations`), sending it again if a
                reorg takes its block back meanwhile.

        Returns:
            The `Commit` (`existing=True` when the model already held exactly this content).

        Example:
            >>> registry = modelreg.connect()
            >>> registry.commit("checkpoint-1000.safetensors", "my-gpt", parent=1, metrics={"val_loss": 2.1}).version
            2
        """
        from modelreg.service.commit import NOT_COMMITTED, code_revision_of, commit_checkpoint, release_pins
        from modelreg.service.ingest import seal_and_add

        if privacy is not None:
            from modelreg.formats.privacy import claimed

            claimed(privacy)  # a bad claim fails before anything is pinned or sent
        dataset = _deprecated_dataset_root(dataset, dataset_root)
        model_id, dataset_root, dataset_manifest = self.check_commit(model, parent=parent, dataset=dataset)
        # Sealed (and added, one read) before any transaction: a bad model leaves nothing on-chain.
        sealed, checkpoint_cid = seal_and_add(path, self.ipfs, follow_symlinks=follow_symlinks)
        try:
            model_id, parent = self.register_for_commit(model, model_id, parent, dataset_manifest)
            self.client.ops = self.chain_ops(wait=wait)
            try:
                with send_lock(self.home):
                    return commit_checkpoint(self.client, self.ipfs, path, model_id=model_id, model_name=model,
                                             parent=parent, dataset_root=dataset_root, step=step, metrics=metrics,
                                             config=config, note=note, added=(sealed, checkpoint_cid),
                                             privacy=privacy, code_revision=code_revision or code_revision_of())
            finally:
                self.client.ops = self.chain_ops()
        except NOT_COMMITTED:
            release_pins(self.ipfs, [checkpoint_cid])
            raise

    def derive(self, model: str, version: int | None, transform: str, params: dict | None = None, *, to: str,
               engine, out_dir: str | os.PathLike | None = None, local: str | os.PathLike | None = None):
        """Derive a version of `to` from `version` of `model` by a named transform, and commit it.

        Args:
            model, version: the source (version None: the newest); a revoked one is refused.
            transform, params: the transform's name and its parameters ({"dtype": "fp16"} for cast).
            to: the model the derived version is committed to (registered if new; may be `model`).
            engine: the transforms, `modelreg.training.transforms` (torch lives there, not here).
            out_dir: keep the derived model here; local: a copy of the source, checked against the chain.

        Returns:
            A `Derived`: `.commit`, `.derivation` (source roots, transform, tools, fidelity), `.timings`.

        Example:
            >>> from modelreg.training import transforms
            >>> registry.derive("gpt", 3, "cast", {"dtype": "bf16"}, to="gpt-bf16", engine=transforms).commit.version
            1
        """
        from modelreg.service.derive import derive

        return derive(self, model, version, transform, params, to=to, engine=engine, out_dir=out_dir, local=local)

    def check_commit(self, model: str, *, parent: VersionRef | int | None = None,
                     dataset: str | os.PathLike | None = None) -> tuple[int | None, str | None, dict | None]:
        """Every read-only check a commit of `model` needs (`modelreg.service.preflight`), writing nothing.

        Returns:
            The model's id (None if it is new), the dataset root (None without a dataset) and, for a
            dataset directory, the manifest to register once every check has passed.
        """
        from modelreg.service.preflight import check_commit

        root, manifest = _dataset_of(dataset)
        model_id = check_commit(self.client, model, parent=parent, dataset_root=root,
                                dataset_registered_by_signer=manifest is not None)
        return model_id, root, manifest

    def register_for_commit(self, model: str, model_id: int | None, parent: VersionRef | int | None,
                            dataset_manifest: dict | None) -> tuple[int, VersionRef | None]:
        """The writes a checked commit (`check_commit`'s answer) needs before its version: the dataset
        directory's registration, and the model's if it is new; the model's id and the parent as a
        `VersionRef`."""
        if dataset_manifest is not None:
            self.register_dataset(dataset_manifest)
        if model_id is None:
            model_id = self.model_id_or_register(model, "")
        if isinstance(parent, int):
            parent = VersionRef(model_id, parent)
        return model_id, parent

    def model_id_or_register(self, name: str, metadata: str) -> int:
        """The id of model `name`, registering it first if it is new; two processes doing this at
        once in one data directory register it once."""
        with setup_lock(self.home):
            try:
                return self.client.model_id(name)
            except ModelNotFound:
                return self.client.register_model(name, metadata)[0]

    def register_dataset(self, manifest: dict) -> str:
        """Pin a dataset manifest and register its root as the signer's, unless it is already; the
        manifest's CID."""
        from modelreg.formats.manifest import canonical_json

        cid = self.ipfs.add_bytes(canonical_json(manifest))
        with setup_lock(self.home):
            self.client.register_dataset(manifest["root"], cid)  # no transaction if it is registered
        return cid

    def register_dataset_dir(self, directory: str | os.PathLike):
        """Seal a dataset directory and register it (`register_dataset`); the `SealedDataset` and the
        manifest's CID."""
        from modelreg.formats.manifest import dataset_manifest
        from modelreg.formats.seal import seal_dataset

        sealed = seal_dataset(directory)
        return sealed, self.register_dataset(dataset_manifest(sealed))

    def embedded_chain_stopped(self) -> bool:
        """True when this data directory's embedded devnet was in use and is no longer running."""
        if not self.embedded_chain:
            return False
        from modelreg.devnet.manager import status

        return not status(self.home).running

    def history(self, model: str | int) -> list[dict]:
        """Every version of `model` in commit order, with revocations, read from contract events."""
        return history(self.events(), self.model_id(model))

    def verify(self, target: str, model: str | int, *, version: int | None = None,
               tensors: tuple[str, ...] = (), files: tuple[str, ...] = (), follow_symlinks: bool = False):
        """Verify a file or model directory, or a file or directory CID fetched from IPFS first.

        Returns a `Verification`: `.ok` is True when `target` is exactly a registered,
        unrevoked version of `model`; otherwise it names the differing tensors and files.
        """
        from modelreg.service.verify import verify_checkpoint

        model_id = self.model_id(model)
        kwargs = {"version": version, "tensors": tuple(tensors), "files": tuple(files), "fetch": self.ipfs.cat,
                  "follow_symlinks": follow_symlinks}
        with local_copy(target, lambda: self.ipfs, self.home.scratch) as path:
            return verify_checkpoint(path, self.client, self.events(), model_id, **kwargs)


def _deprecated_dataset_root(dataset, dataset_root):
    if dataset_root is None:
        return dataset
    import warnings

    warnings.warn("Registry.commit(dataset_root=...) is deprecated; pass dataset=", DeprecationWarning, stacklevel=3)
    if dataset is not None and dataset != dataset_root:
        raise InputInvalid("dataset and dataset_root name different datasets; pass dataset alone")
    return dataset_root


def _dataset_of(dataset) -> tuple[str | None, dict | None]:
    """A dataset given as a directory (sealed here; its manifest to register) or a registered root."""
    if dataset is None:
        return None, None
    if Path(dataset).is_dir():
        from modelreg.formats.manifest import dataset_manifest
        from modelreg.formats.seal import seal_dataset

        manifest = dataset_manifest(seal_dataset(dataset))
        return manifest["root"], manifest
    root = str(dataset).lower()
    if len(root) != 66 or not root.startswith("0x") or not all(c in "0123456789abcdef" for c in root[2:]):
        raise InputInvalid(f"dataset {str(dataset)!r} is neither a directory nor a dataset root (0x and 64 hex "
                           "digits)")
    return root, None


@contextmanager
def local_copy(target: str | os.PathLike, open_store, workdir: Path | None = None) -> Iterator[Path]:
    """`target` itself when it exists here; else the file or directory its CID names, fetched (every
    block checked) into a temporary directory under `workdir`, from the store `open_store()` opens."""
    if Path(target).exists():
        yield Path(target)
        return
    _check_cid(str(target))
    store = open_store()
    with tempfile.TemporaryDirectory(prefix=temp_prefix("verify."), dir=workdir) as tmp:
        path = Path(tmp) / "model"  # a file or a directory, as the CID holds it
        store.get(str(target), path)
        yield path


def _check_cid(target: str) -> None:
    """A TARGET that is no existing file must be a CID; say which of the two the user meant."""
    from modelreg.ipfs.unixfs import parse_cid

    if "/" in target or "." in target or os.sep in target:  # never in a CID's base32 or base58 text
        raise InputInvalid(f"file {target!r} does not exist")
    try:
        parse_cid(target)
    except CidInvalid as e:
        raise CidInvalid(f"no file named {target!r} exists, and {e}") from None


def open_registry(home: "HomeLike | None" = None, *, write: bool = True, **settings) -> Registry:
    """`modelreg.connect`: the data directory `home` (default `$MODELREG_HOME`, else `~/.modelreg`),
    its config.toml and `MODELREG_*` variables with `settings` (the CLI flags' names) over them,
    connected. Inside the package, call this rather than the `modelreg` root (tests/test_layers.py)."""
    resolved = resolve_home(home)
    return connect(resolved, load_config(resolved, flags=overrides_of(settings)), write=write)


def connect(home: HomeLike, config: Config, *, write: bool = False, notify=None) -> Registry:
    """Connect as configured. The embedded devnet is started, and its contract deployed, on demand.

    With `config.chain.registry` set, that contract is used and nothing needs to be recorded in
    `home`: an RPC URL and an address are enough to read, and no signer is made unless `write`.
    With `write`, the signer is made and the contract checked now; a read-only registry whose
    contract is recorded builds its client only when a read needs more than the event index.
    """
    home = Home.of(home)
    endpoints, chain_id, embedded = _endpoint(home, config, notify)
    rpc_url = endpoints.url
    registry = Registry(home, config, rpc_url=endpoints, chain_id=chain_id, embedded_chain=embedded,
                        signer=make_signer(config, rpc_url) if write else None, notify=notify)
    if config.chain.registry:
        registry.client  # noqa: B018  (an address given by hand is checked before anything is read)
        return registry
    with setup_lock(home):  # a second command started at once waits, then finds this deployment
        try:
            deployments.lookup(home, chain_id)
        except ContractNotDeployed:
            if not embedded:
                raise
            # The embedded devnet is this data directory's own chain: deploying is part of starting
            # it. A devnet account pays, so that a read, or a signer the devnet never funded, works.
            from modelreg.chain.client import RegistryClient
            from modelreg.chain.client import connect as connect_chain

            RegistryClient.deploy(connect_chain(rpc_url), _dev_signer(0), home)
    if write:
        registry.client  # noqa: B018  (check the contract now, before any work is done)
    return registry


def _client_at(w3, signer, home: Home, address: str):
    """The registry at `address`, its logs read from its deployment block: recorded, or found on the node."""
    from modelreg.chain.client import RegistryClient, chain_id_of, deployment_block

    chain_id = chain_id_of(w3)
    known = {d.address.lower(): d.block for d in deployments.recorded(home, chain_id)}
    block = known.get(address.lower())
    if block is None:
        block = deployment_block(w3, address)
    try:
        return RegistryClient.at(w3, signer, address, from_block=block)
    except ContractNotDeployed:
        raise ContractNotDeployed(f"no contract code at {address} on chain {chain_id}: the address is not a "
                                  "registry on this chain") from None


def deploy(home: HomeLike, config: Config, *, force: bool = False):
    """Deploy a new ModelRegistry on the configured chain and record it in the data directory.

    Refused (DeploymentExists) while the registry recorded for the chain still has code, unless
    `force`: a new registry starts an empty history. The replaced address stays recorded.
    """
    from modelreg.chain.client import RegistryClient
    from modelreg.chain.client import connect as connect_chain

    endpoints, _, _ = _endpoint(home, config)
    rpc_url, w3 = endpoints.url, connect_chain(endpoints)
    with setup_lock(home):  # two deploys at once: the second sees the first's record
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


def _endpoint(home: HomeLike, config: Config, notify=None) -> tuple[Endpoints, int, bool]:
    """The configured chain (the embedded devnet, started if needed): its endpoints, chain id, and
    whether it is the embedded one."""
    embedded = not config.chain.rpc_url
    if embedded:
        from modelreg.devnet.manager import up

        state = up(home, port=0)
        urls = [state.url]
        if state.started:  # once, by the command that started it: a daemon nobody mentions outlives everyone
            log.info("Started the embedded devnet of %s at %s (pid %s); %s.", home, state.url, state.pid,
                     state.stops_when(home))
    else:
        urls = config.chain.rpc_urls
    endpoints = Endpoints(urls, timeout=config.network.timeout, notify=notify or _log)
    chain_id = JsonRpc(endpoints).chain_id()
    rpc_url = endpoints.url
    expected = config.chain.chain_id or None
    if expected is not None and chain_id != expected:
        if embedded:
            raise ChainIdMismatch(f"the embedded devnet is chain {chain_id}, not the configured chain {expected}")
        raise ChainIdMismatch(f"{rpc_url} serves chain {chain_id}, not the configured chain {expected}")
    return endpoints, chain_id, embedded


def make_signer(config: Config, rpc_url: str):
    from modelreg.chain.signer import Signer

    s = config.signer
    if s.kind == "dev":
        return _dev_signer(s.dev_account)
    if s.kind == "env":
        return Signer.from_env(s.key_env)
    if not s.keystore:
        raise SignerInvalid("signer is 'keystore' but no keystore file is configured")
    password = os.environ.get(s.password_env)
    if password is None:
        try:
            password = getpass.getpass(f"Password for {s.keystore}: ")
        except EOFError:  # no terminal to ask on (CI, a pipe)
            raise SignerInvalid(f"no password for keystore {s.keystore}: set ${s.password_env}, "
                                "or run in a terminal to be asked") from None
    return Signer.from_keystore(s.keystore, password)


def _dev_signer(index: int):
    from modelreg.chain.signer import Signer
    from modelreg.devnet.accounts import dev_accounts

    accounts = dev_accounts()
    if not 0 <= index < len(accounts):
        raise SignerInvalid(f"dev account {index} does not exist; use 0 to {len(accounts) - 1}")
    return Signer.from_key(accounts[index].key)
