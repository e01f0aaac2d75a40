"""The chain client: deploy the ModelRegistry and call each of its functions through web3.py.

Works over any provider: the in-process eth-tester, the project's devnet, anvil, a public
network. Transactions are signed locally (registry.signer), sent raw, and waited for. Reverts
come back as the project's exceptions, decoded from the contract's custom errors.
"""

import ast
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from eth_utils import ValidationError as _NodeValidationError
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    Web3RPCError,
)
from web3.types import EventData, TxReceipt

from modelreg._hex import to_hex
from modelreg._json import restore_recursion_limit
from modelreg.chain import deployments
from modelreg.chain.endpoints import Endpoints, web3_provider
from modelreg.chain.names import check_model_name
from modelreg.chain.sending import ChainOps, TxSender
from modelreg.chain.signer import Signer
from modelreg.contracts.artifact import load_artifact
from modelreg.contracts.released import RELEASED, code_hash, version_of_code
from modelreg.errors import (
    AccessDenied,
    AccumulatorMismatch,
    ChainIdMismatch,
    ChainUnavailable,
    ContractIncompatible,
    ContractNotDeployed,
    DatasetNotFound,
    DuplicateRoot,
    InputInvalid,
    InsufficientFunds,
    ModelNameInvalid,
    ModelNameTaken,
    ModelNotFound,
    ModelregError,
    ParentNotFound,
    ProofInvalid,
    RegistryCodeUnknown,
    RootMismatch,
    SignerInvalid,
    TransactionFailed,
    VersionNotFound,
)
from modelreg.formats import mmr
from modelreg.records import VersionRef, root_or_none, root_or_zero

restore_recursion_limit()  # web3 (py_ecc) raised it to 100,000: see modelreg._json

# How a node says "that nonce is taken": another client with the same key got there first.
_STALE_NONCE = ("nonce too low", "already known", "known transaction", "invalid transaction nonce",
                "replacement transaction underpriced", "nonce has already been used")
_NO_FUNDS = ("insufficient funds", "enough balance", "cannot afford")
_NONCE_TRIES = 8
_CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, ProviderConnectionError)


def _reverts() -> tuple[type[BaseException], ...]:
    """What a revert raises: web3's error, or eth-tester's when the chain is in-process. eth-tester
    is looked up, not imported: importing it costs a second, and only an in-process chain loads it."""
    tester = sys.modules.get("eth_tester.exceptions")
    return (ContractLogicError, tester.TransactionFailed) if tester else (ContractLogicError,)


_PANIC = keccak(text="Panic(uint256)")[:4]
# geth says "exceed maximum block range 3"; public endpoints built on it add a colon.
_RANGE_LIMIT = re.compile(r"exceed maximum block range:? (\d+)")
INTERFACE_VERSION = 3  # IModelRegistry.version() of the contracts `deploy` creates
SUPPORTED_VERSIONS = (2, 3)  # the versions this client reads and writes
_ARTIFACTS = {2: "ModelRegistryV2", 3: "ModelRegistry"}
_COMMIT_TRIES = 4  # a commit whose accumulator moved (another commit came first) is rebuilt and resent


@dataclass(frozen=True)
class ModelRecord:
    """A registered model as the contract stores it."""

    model_id: int
    name: str
    metadata: str
    owner: str
    pending_owner: str | None
    version_count: int
    epoch: int  # ownership changes so far; maintainers of an earlier epoch have no rights


@dataclass(frozen=True)
class VersionRecord:
    """One version: what it is (weights root, tensor count, files root), its dataset, lineage and
    revocation; storage and its VersionCommitted log together, the log checked against storage.

    Roots are 0x-prefixed hex; `files_root`, `dataset_root`, `dataset_id` and `parent` are None
    when the version has none.
    """

    model_id: int
    version: int
    weights_root: str
    tensor_count: int
    files_root: str | None
    dataset_root: str | None
    dataset_id: int | None
    parent: VersionRef | None
    committer: str
    manifest_cid: str
    block_number: int
    tx_hash: str
    revoked: bool
    revoker: str | None
    revocation_reason: str
    replacement: int | None


def _proxy_note(code: bytes) -> str:
    """What the foreign code looks like, when it is recognisably a proxy (EIP-1167 or a DELEGATECALL)."""
    if bytes(code).startswith(bytes.fromhex("363d3d373d3d3d363d73")):
        return f" (an EIP-1167 minimal proxy to 0x{bytes(code)[10:30].hex()})"
    if 0xF4 in _opcodes(bytes(code)):
        return " (it uses DELEGATECALL: a proxy, whose logic can be swapped)"
    return ""


def _opcodes(code: bytes):
    """The opcodes of EVM code, skipping PUSH data."""
    i = 0
    while i < len(code):
        op = code[i]
        yield op
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)


def connect(rpc_url: "str | Endpoints", expected_chain_id: int | None = None) -> Web3:
    """A Web3 for the JSON-RPC endpoint `rpc_url`, or for `Endpoints` (several URLs, a deadline per
    call, retries); ChainUnavailable if it does not answer."""
    endpoints = rpc_url if isinstance(rpc_url, Endpoints) else Endpoints(rpc_url)
    w3 = Web3(web3_provider(endpoints))
    try:
        chain_id = w3.eth.chain_id
    except (*_CONNECTION_ERRORS, Web3RPCError, ValueError) as e:
        raise ChainUnavailable(f"cannot reach the JSON-RPC endpoint {endpoints.url} ({type(e).__name__})",
                               endpoint=endpoints.url) from None
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ChainIdMismatch(f"{endpoints.url} serves chain {chain_id}, not the configured chain "
                              f"{expected_chain_id}")
    return w3


def chain_id_of(w3: Web3) -> int:
    """The chain id the node behind `w3` serves; ChainUnavailable if it stopped answering."""
    return _rpc_call(lambda: w3.eth.chain_id)


def deployment_block(w3: Web3, address: str) -> int:
    """The block whose transaction created `address`, found by bisecting eth_getCode over past blocks.

    Log searches start there instead of at genesis. The answer is only trusted if that block holds a
    transaction creating the contract: a node that keeps no old state (not an archive node) may err or
    answer wrongly for past blocks, and a contract made by a factory has no creating transaction. Then
    the search starts at block 0: slower, never missing an event.
    """
    address = Web3.to_checksum_address(address)
    low, high = 0, _rpc_call(lambda: w3.eth.block_number)
    try:
        if not _rpc_call(lambda: w3.eth.get_code(address, high)):
            return 0  # no code at all: RegistryClient.at says so
        while low < high:
            middle = (low + high) // 2
            if _rpc_call(lambda: w3.eth.get_code(address, middle)):  # noqa: B023
                high = middle
            else:
                low = middle + 1
        block = _rpc_call(lambda: w3.eth.get_block(low, full_transactions=True))
        for tx in block["transactions"]:
            if not tx.get("to"):  # a creation: None, or an empty field on some nodes
                receipt = _rpc_call(lambda: w3.eth.get_transaction_receipt(tx["hash"]))  # noqa: B023
                if receipt["contractAddress"] == address:
                    return low
    except (Web3RPCError, ValueError):
        pass
    return 0


def _bytes32(value, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    except ValueError:
        raise InputInvalid(f"{what} must be 32 bytes as hex (0x and 64 hex digits), not {value!r}") from None
    if len(raw) != 32:
        raise InputInvalid(f"{what} must be 32 bytes (64 hex digits), got {len(raw)} bytes")
    return raw


def _leaf(values: Sequence) -> tuple:
    """(name, dtype, shape, sha256) as the contract's TensorLeaf struct takes it."""
    name, dtype, shape, digest = values
    return (name, dtype, [int(d) for d in shape], _bytes32(digest, f"sha256 of tensor {name!r}"))


def _plain(abi_type: str, value):
    """An error argument as a message shows it: bytes as 0x hex, addresses checksummed."""
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return to_hex(value) if isinstance(value, bytes) else value


_HISTORY_RACES = 3  # re-reads of a model's history when versions land while it is read


class RegistryClient:
    """One ModelRegistry on one chain, read through `w3` and written with `signer` (None: read only)."""

    def __init__(self, w3: Web3, address: str, signer: Signer | None = None, *,
                 from_block: int = 0, receipt_timeout: float = 120, interface_version: int = INTERFACE_VERSION):
        artifact = load_artifact(_ARTIFACTS[interface_version])
        self.interface_version = interface_version
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.signer = signer
        self.from_block = from_block  # where log searches start: the deployment block when known
        self.receipt_timeout = receipt_timeout
        self.ops = ChainOps(receipt_timeout=receipt_timeout)  # how transactions are sent and waited for
        self._sender: TxSender | None = None
        # The web3 contract, for what this client does not wrap (gas estimates, raw calls).
        self.contract = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self._errors = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]: e
            for e in artifact["abi"] if e["type"] == "error"
        }
        # v3: what is read once and never changes (a model's registration), and the last history
        # checked against each model's accumulator.
        self._registrations: dict[int, dict] = {}
        self._histories: dict[int, tuple[int, bytes, list, mmr.MountainRange]] = {}
        self._events = {
            keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"): e["name"]
            for e in artifact["abi"] if e["type"] == "event"
        }

    # ------------------------------------------------------------ construction

    @classmethod
    def deploy(cls, w3: Web3, signer: Signer, home: Path | None = None, *,
               interface_version: int = INTERFACE_VERSION) -> "RegistryClient":
        """Deploy a new ModelRegistry (version 3 unless `interface_version` says 2, for tests of old
        registries); with `home`, record it there for this chain id."""
        artifact = load_artifact(_ARTIFACTS[interface_version])
        constructor = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]).constructor()
        receipt = _Sender(w3, signer, cls._deploy_revert).send(constructor, "deploy the ModelRegistry",
                                                                timeout=120)
        client = cls(w3, receipt["contractAddress"], signer, from_block=receipt["blockNumber"],
                     interface_version=interface_version)
        if home is not None:
            deployments.record(home, client.chain_id, deployments.Deployment(
                address=client.address, block=receipt["blockNumber"],
                tx=to_hex(receipt["transactionHash"]), deployer=signer.address))
        return client

    @staticmethod
    def _deploy_revert(data: bytes | None) -> ModelregError:
        return TransactionFailed("deploying the ModelRegistry reverted; is the chain's EVM older than "
                                 "Cancun? (the artifact targets evmVersion cancun)")

    @classmethod
    def at(cls, w3: Web3, signer: Signer | None, address: str, *, from_block: int = 0) -> "RegistryClient":
        """The ModelRegistry at `address`: ContractNotDeployed if no code is there,
        ContractIncompatible if that code does not report this client's interface version."""
        if not Web3.is_address(address):
            raise InputInvalid(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
        client = cls(w3, address, signer, from_block=from_block)
        code = client._rpc(lambda: w3.eth.get_code(client.address))
        if not code:
            raise ContractNotDeployed(f"no contract code at {client.address} on chain {client.chain_id}; "
                                      "the chain may have been reset: deploy the ModelRegistry again")
        released = version_of_code(code)
        if released is None:
            raise RegistryCodeUnknown(f"the code at {client.address} on chain {client.chain_id} is not a released "
                                      f"ModelRegistry: {len(code)} bytes hashing to {code_hash(code)}"
                                      f"{_proxy_note(code)}; modelreg reads only the code it built "
                                      f"(released: {', '.join(f'v{v}' for v in RELEASED)})")
        try:
            found = _rpc_call(client.contract.functions.version().call)
        except (*_reverts(), BadFunctionCallOutput, ValueError):
            found = None  # no version(): an older ModelRegistry, or another contract altogether
        if found not in SUPPORTED_VERSIONS:
            what = "has no version()" if found is None else f"reports interface version {found}"
            raise ContractIncompatible(f"the contract at {client.address} {what}; this modelreg speaks "
                                       f"ModelRegistry interface version {INTERFACE_VERSION} and reads version 2")
        if found != client.interface_version:
            client = cls(w3, address, signer, from_block=from_block, interface_version=found)
        return client

    @classmethod
    def from_home(cls, w3: Web3, signer: Signer | None, home: Path) -> "RegistryClient":
        """The ModelRegistry recorded in `home` for this chain (see registry.deployments)."""
        chain_id = chain_id_of(w3)
        deployment = deployments.lookup(home, chain_id)
        try:
            return cls.at(w3, signer, deployment.address, from_block=deployment.block)
        except ContractNotDeployed:
            raise ContractNotDeployed(
                f"the ModelRegistry recorded for chain {chain_id} in {deployments.location(home)} "
                f"({deployment.address}) has no code; the chain was reset or is another one: "
                "deploy again to replace the record") from None

    @property
    def chain_id(self) -> int:
        return chain_id_of(self.w3)

    # --------------------------------------------------------------- the chain
    # What the other layers read of the chain itself, through the same error mapping as every other
    # call (a node that stopped answering is ChainUnavailable): web3 stays inside modelreg.chain.

    def head(self) -> int:
        """The number of the latest block."""
        return self._rpc(lambda: self.w3.eth.block_number)

    def block_hash(self, number: int) -> str:
        """The hash of block `number`, as 0x-prefixed lower-case hex."""
        return to_hex(self._rpc(lambda: self.w3.eth.get_block(number)["hash"]))

    def balance(self, address: str) -> int:
        """What `address` holds now, in wei."""
        return self._rpc(lambda: self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def gas_price(self) -> int:
        """The node's gas price now, in wei."""
        return self._rpc(lambda: self.w3.eth.gas_price)

    # ------------------------------------------------------------------ models

    def register_model(self, name: str, metadata: str = "") -> tuple[int, TxReceipt]:
        """Register model `name` owned by the signer; return its id and the receipt.

        ModelNameInvalid, before any transaction, if the contract would refuse the name.
        """
        check_model_name(name)
        receipt = self._transact(self.contract.functions.registerModel(name, metadata),
                                 f"register model {name!r}")
        (event,) = self._decoded(receipt, "ModelRegistered")
        return event["args"]["modelId"], receipt

    def model_id(self, name: str) -> int:
        """The id of the model named `name`; ModelNotFound if there is none."""
        if self.interface_version >= 3:
            return self._model_id_v3(name)
        model_id = self._call(self.contract.functions.modelIdByName(name))
        if model_id == 0:
            raise ModelNotFound(f"no model named {name!r} is registered in the ModelRegistry at "
                                f"{self.address}; register it first")
        return model_id

    def get_model(self, model_id: int) -> ModelRecord:
        if self.interface_version >= 3:
            return self._get_model_v3(model_id)
        name, metadata, owner, pending, count, epoch = self._call(self.contract.functions.getModel(model_id))
        return ModelRecord(model_id, name, metadata, owner, None if int(pending, 16) == 0 else pending, count,
                           epoch)

    def model_count(self) -> int:
        return self._call(self.contract.functions.modelCount())

    def add_maintainer(self, model_id: int, account: str) -> TxReceipt:
        return self._transact(self.contract.functions.addMaintainer(model_id, account),
                                            f"add maintainer {account} to model {model_id}")

    def remove_maintainer(self, model_id: int, account: str) -> TxReceipt:
        return self._transact(self.contract.functions.removeMaintainer(model_id, account),
                                            f"remove maintainer {account} from model {model_id}")

    def is_maintainer(self, model_id: int, account: str) -> bool:
        return self._call(self.contract.functions.isMaintainer(model_id, account))

    def transfer_ownership(self, model_id: int, new_owner: str) -> TxReceipt:
        """Offer model `model_id` to `new_owner`; it becomes theirs when they accept_ownership."""
        return self._transact(self.contract.functions.transferOwnership(model_id, new_owner),
                                            f"transfer model {model_id} to {new_owner}")

    def accept_ownership(self, model_id: int) -> TxReceipt:
        return self._transact(self.contract.functions.acceptOwnership(model_id),
                                            f"accept ownership of model {model_id}")

    # ---------------------------------------------------------------- datasets

    def register_dataset(self, root, manifest_cid: str) -> TxReceipt | None:
        """Register a dataset root as the signer's record; None (and no transaction) if the signer
        has one already. Another account's record of the same root does not count: it is theirs."""
        root = _bytes32(root, "dataset root")
        if self.signer is not None and self.dataset_id(root, self.signer.address):
            return None
        return self._transact(self.contract.functions.registerDataset(root, manifest_cid),
                                            f"register dataset {to_hex(root)}")

    def dataset_id(self, root, registrant: str) -> int | None:
        """The id of `registrant`'s record of dataset `root`, or None if it has none."""
        found = self._call(self.contract.functions.datasetIdOf(_bytes32(root, "dataset root"), registrant))
        return found or None

    def get_dataset(self, dataset_id: int) -> tuple[str, str]:
        """Dataset record `dataset_id`: its root (0x-hex) and registrant."""
        if self.interface_version >= 3:
            return self._get_dataset_v3(dataset_id)
        root, registrant = self._call(self.contract.functions.getDataset(dataset_id))
        return to_hex(root), registrant

    # ---------------------------------------------------------------- versions

    def commit_version(self, model_id: int, weights_root, *, tensor_count: int, files_root=None,
                       dataset_root=None, parent: VersionRef | None = None,
                       manifest_cid: str) -> tuple[int, TxReceipt]:
        """Append a version to `model_id`; return its number and the receipt.

        A version is its weights root, its tensor count and the root of its other files (None:
        it has none). `dataset_root` (or None) must have been registered by the signer or by the
        model's owner: the commit names that record. `parent` is (model id, version) or None.
        Committing content a live version already has raises DuplicateRoot naming that version.
        """
        weights_root = _bytes32(weights_root, "weights root")
        files_root = _bytes32(root_or_zero(files_root), "files root")
        if self.interface_version >= 3:
            return self._commit_version_v3(model_id, (weights_root, tensor_count, files_root), dataset_root,
                                           parent, manifest_cid)
        dataset_id = 0 if dataset_root is None else self._dataset_for_commit(model_id, dataset_root)
        parent_model, parent_version = parent or (0, 0)
        fn = self.contract.functions.commitVersion(model_id, (weights_root, tensor_count, files_root), dataset_id,
                                                     parent_model, parent_version, manifest_cid)
        receipt = self._transact(fn, f"commit {to_hex(weights_root)} to model {model_id}")
        (event,) = self._decoded(receipt, "VersionCommitted")
        return event["args"]["version"], receipt

    def _dataset_for_commit(self, model_id: int, root) -> int:
        root = _bytes32(root, "dataset root")
        accounts = [self.signer.address] if self.signer is not None else []
        accounts.append(self.get_model(model_id).owner)
        for account in accounts:
            if found := self.dataset_id(root, account):
                return found
        raise DatasetNotFound(f"dataset root {to_hex(root)} has no record by {' or '.join(accounts)} "
                                   f"(the committer or the owner of model {model_id})")

    def revoke_version(self, model_id: int, version: int, reason: str, replacement: int = 0) -> TxReceipt:
        """Mark a version revoked, with a reason and optionally the version that replaces it."""
        if self.interface_version >= 3:
            fn = self.contract.functions.revokeVersion(self._version_proof(model_id, version), reason, replacement)
            return self._transact(fn, f"revoke version {version} of model {model_id}")
        fn = self.contract.functions.revokeVersion(model_id, version, reason, replacement)
        return self._transact(fn, f"revoke version {version} of model {model_id}")

    def version_count(self, model_id: int) -> int:
        return self._call(self.contract.functions.versionCount(model_id))

    def get_version(self, model_id: int, version: int) -> VersionRecord:
        """Everything known about a version: its storage and its VersionCommitted log, which must agree."""
        if self.interface_version >= 3:
            return self._get_version_v3(model_id, version)
        content_hash, tensor_count, dataset_id, committer, revoked, revoker, replacement, reason = self._call(
            self.contract.functions.getVersion(model_id, version))
        logs = self._logs(lambda first, last: self.contract.events.VersionCommitted.get_logs(
            argument_filters={"modelId": model_id, "version": version}, from_block=first, to_block=last))
        if not logs:
            raise ChainUnavailable(f"the node returned no VersionCommitted log for model {model_id} "
                                   f"version {version} from block {self.from_block}; "
                                   "use a node that keeps all logs (an archive node)")
        log = logs[0]
        a = log["args"]
        content = (a["weightsRoot"], a["tensorCount"], a["filesRoot"])
        if self._content_hash(content) != content_hash:
            raise RootMismatch(f"the VersionCommitted log of model {model_id} version {version} does not "
                               "hash to the content the contract stores; the node is lying or broken")
        return VersionRecord(
            model_id=model_id, version=version, weights_root=to_hex(a["weightsRoot"]), tensor_count=tensor_count,
            files_root=root_or_none(a["filesRoot"]),
            dataset_root=to_hex(a["datasetRoot"]) if dataset_id else None, dataset_id=dataset_id or None,
            parent=VersionRef(a["parentModel"], a["parentVersion"]) if a["parentModel"] else None,
            committer=committer, manifest_cid=a["manifestCid"],
            block_number=log["blockNumber"], tx_hash=to_hex(log["transactionHash"]),
            revoked=revoked, revoker=revoker if revoked else None, revocation_reason=reason,
            replacement=replacement or None)

    def is_revoked(self, model_id: int, version: int) -> bool:
        """Whether the version is revoked, from storage alone (no log query)."""
        if self.interface_version >= 3:
            return self._call(self.contract.functions.isRevoked(model_id, version))
        return self._call(self.contract.functions.getVersion(model_id, version))[4]

    def find_version_by_root(self, model_id: int, weights_root) -> dict | None:
        """The latest version of `model_id` with this weights root, from its log, or None: how a
        retried commit finds what it committed. A dict: version, manifest_cid, block, tx."""
        root = _bytes32(weights_root, "weights root")
        logs = self._logs(lambda first, last: self.contract.events.VersionCommitted.get_logs(
            argument_filters={"modelId": model_id, "weightsRoot": root}, from_block=first, to_block=last))
        if not logs:
            return None
        log = max(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        return {"version": log["args"]["version"], "manifest_cid": log["args"]["manifestCid"],
                "block": log["blockNumber"], "tx": to_hex(log["transactionHash"])}

    def commits_of_root(self, weights_root) -> list[EventData]:
        """Every VersionCommitted log, across models, with exactly this weights root, earliest first:
        one eth_getLogs on the indexed root."""
        root = _bytes32(weights_root, "weights root")
        logs = self._logs(lambda first, last: self.contract.events.VersionCommitted.get_logs(
            argument_filters={"weightsRoot": root}, from_block=first, to_block=last))
        return sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))

    def _content(self, model_id: int, version: int) -> tuple:
        """(weights root, tensor count, files root) of a version, as the verify functions take it."""
        r = self.get_version(model_id, version)
        return (_bytes32(r.weights_root, "weights root"), r.tensor_count,
                _bytes32(root_or_zero(r.files_root), "files root"))

    def _proven(self, model_id: int, version: int) -> tuple:
        """The arguments that name a version to the verify functions: v2 takes (model, version,
        content), v3 a proof of the version's record against the model's accumulator."""
        if self.interface_version >= 3:
            return (self._version_proof(model_id, version),)
        return (model_id, version, self._content(model_id, version))

    # -------------------------------------------------------------- v3 reading

    def _registration(self, model_id: int) -> dict:
        """The ModelRegistered event of `model_id` (v3 keeps name and metadata only there), checked:
        its name hashes to its nameHash topic, and that name's accumulator is set."""
        if model_id in self._registrations:
            return self._registrations[model_id]
        self._call(self.contract.functions.getModel(model_id))  # ModelNotFound if it does not exist
        logs = self._logs(lambda first, last: self.contract.events.ModelRegistered.get_logs(
            argument_filters={"modelId": model_id}, from_block=first, to_block=last))
        if not logs:
            raise ChainUnavailable(f"the node returned no ModelRegistered log for model {model_id} from block "
                                   f"{self.from_block}; use a node that keeps all logs (an archive node)")
        args = dict(logs[0]["args"])
        if keccak(text=args["name"]) != args["nameHash"] or \
                self._call(self.contract.functions.accumulatorOf(args["nameHash"])) == bytes(32):
            raise RootMismatch(f"the ModelRegistered log of model {model_id} does not match the registry's "
                               "storage; the node is lying or broken")
        self._registrations[model_id] = args
        return args

    def _history(self, model_id: int) -> tuple[list, mmr.MountainRange]:
        """Every VersionCommitted log of `model_id`, version 1 first, and their mountain range, checked
        against the model's on-chain accumulator: RootMismatch if the node left out, changed or
        added one."""
        name_hash = self._registration(model_id)["nameHash"]
        for attempt in range(_HISTORY_RACES + 1):
            count = self.version_count(model_id)
            stored = self._call(self.contract.functions.accumulatorOf(name_hash))
            cached = self._histories.get(model_id)
            if cached and cached[:2] == (count, stored):
                return cached[2], cached[3]
            try:
                ordered, mountain = self._checked_history(model_id, count, stored)
            except RootMismatch:
                # A version committed between the reads above and the logs' (another process in the same
                # home, any other sender) looks like a lie; it is one only if the chain stood still.
                moved = (self.version_count(model_id),
                         self._call(self.contract.functions.accumulatorOf(name_hash))) != (count, stored)
                if moved and attempt < _HISTORY_RACES:
                    continue
                raise
            self._histories[model_id] = (count, stored, ordered, mountain)
            return ordered, mountain
        raise AssertionError("unreachable")  # the loop returns or raises

    def _checked_history(self, model_id: int, count: int, stored: bytes) -> tuple[list, mmr.MountainRange]:
        logs = self._logs(lambda first, last: self.contract.events.VersionCommitted.get_logs(
            argument_filters={"modelId": model_id}, from_block=first, to_block=last))
        by_version = {log["args"]["version"]: log for log in logs}
        if len(by_version) < count:
            raise ChainUnavailable(f"the node returned {len(by_version)} VersionCommitted logs for model "
                                   f"{model_id}, which has {count} versions, from block {self.from_block}; "
                                   "use a node that keeps all logs (an archive node)")
        ordered = [by_version.get(v) for v in range(1, count + 1)]
        if None in ordered or len(logs) != count:
            raise RootMismatch(f"the VersionCommitted logs of model {model_id} are not versions 1 to {count}; "
                               "the node is lying or broken")
        mountain = mmr.MountainRange([mmr.leaf_hash(model_id, v, _record(log["args"]))
                                      for v, log in enumerate(ordered, start=1)])
        if mountain.accumulator(model_id) != stored:
            raise RootMismatch(f"the VersionCommitted logs of model {model_id} do not hash to its on-chain "
                               "accumulator; the node is lying or broken")
        return ordered, mountain

    def _version_proof(self, model_id: int, version: int) -> tuple:
        """The VersionProof of a version, built from the model's checked events."""
        logs, mountain = self._history(model_id)
        if not 1 <= version <= len(logs):
            raise VersionNotFound(f"model {model_id} has no version {version}")
        proof = mountain.proof(version - 1)
        return (model_id, self._registration(model_id)["nameHash"], version, _record(logs[version - 1]["args"]),
                proof.peaks, proof.path)

    def _model_id_v3(self, name: str) -> int:
        name_hash = keccak(text=name)
        logs = self._logs(lambda first, last: self.contract.events.ModelRegistered.get_logs(
            argument_filters={"nameHash": name_hash}, from_block=first, to_block=last))
        if not logs:
            raise ModelNotFound(f"no model named {name!r} is registered in the ModelRegistry at "
                                f"{self.address}; register it first")
        model_id = logs[0]["args"]["modelId"]
        self._history(model_id)  # its name, events and accumulator agree, or RootMismatch
        return model_id

    def _get_model_v3(self, model_id: int) -> ModelRecord:
        owner, pending, count, epoch = self._call(self.contract.functions.getModel(model_id))
        registration = self._registration(model_id)
        self._history(model_id)
        return ModelRecord(model_id, registration["name"], registration["metadata"], owner,
                           None if int(pending, 16) == 0 else pending, count, epoch)

    def _get_dataset_v3(self, dataset_id: int) -> tuple[str, str]:
        logs = self._logs(lambda first, last: self.contract.events.DatasetRegistered.get_logs(
            argument_filters={"datasetId": dataset_id}, from_block=first, to_block=last))
        for log in logs:
            root, registrant = log["args"]["root"], log["args"]["registrant"]
            if self._call(self.contract.functions.datasetIdOf(root, registrant)) == dataset_id:
                return to_hex(root), registrant
        raise DatasetNotFound(f"no dataset has id {dataset_id}")

    def _get_version_v3(self, model_id: int, version: int) -> VersionRecord:
        logs, _ = self._history(model_id)
        if not 1 <= version <= len(logs):
            raise VersionNotFound(f"model {model_id} has no version {version}")
        log = logs[version - 1]
        a = log["args"]
        revoked = self.is_revoked(model_id, version)
        revoker, reason, replacement = None, "", 0
        if revoked:
            revocations = self._logs(lambda first, last: self.contract.events.VersionRevoked.get_logs(
                argument_filters={"modelId": model_id, "version": version}, from_block=first, to_block=last))
            if revocations:
                r = revocations[0]["args"]
                revoker, reason, replacement = r["revoker"], r["reason"], r["replacement"]
        return VersionRecord(
            model_id=model_id, version=version, weights_root=to_hex(a["weightsRoot"]), tensor_count=a["tensorCount"],
            files_root=root_or_none(a["filesRoot"]),
            dataset_root=to_hex(a["datasetRoot"]) if a["datasetId"] else None, dataset_id=a["datasetId"] or None,
            parent=VersionRef(a["parentModel"], a["parentVersion"]) if a["parentModel"] else None,
            committer=a["committer"], manifest_cid=a["manifestCid"],
            block_number=log["blockNumber"], tx_hash=to_hex(log["transactionHash"]),
            revoked=revoked, revoker=revoker, revocation_reason=reason, replacement=replacement or None)

    def _commit_version_v3(self, model_id: int, content: tuple, dataset_root, parent, manifest_cid: str):
        """commitVersion on v3: refuse live duplicate content here (the contract no longer does),
        then send with the peaks of the checked history; resent if another commit came first."""
        dataset = (0, bytes(32), "0x" + "00" * 20)
        if dataset_root is not None:
            dataset = self._dataset_for_commit_v3(model_id, dataset_root)
        parent_model, parent_version = parent or (0, 0)
        name_hash = self._registration(model_id)["nameHash"]
        action = f"commit {to_hex(content[0])} to model {model_id}"
        for attempt in range(_COMMIT_TRIES):
            logs, mountain = self._history(model_id)
            for log in reversed(logs):
                a = log["args"]
                if (a["weightsRoot"], a["tensorCount"], a["filesRoot"]) == content and \
                        not self.is_revoked(model_id, a["version"]):
                    raise DuplicateRoot(f"model {model_id} already has this content (weights root "
                                        f"{to_hex(content[0])}) as version {a['version']}, not revoked; "
                                        "nothing new to commit")
            fn = self.contract.functions.commitVersion(model_id, name_hash, content, dataset, parent_model,
                                                       parent_version, manifest_cid, mountain.peaks)
            try:
                receipt = self._transact(fn, action)
            except AccumulatorMismatch:
                if attempt == _COMMIT_TRIES - 1:
                    raise
                continue
            (event,) = self._decoded(receipt, "VersionCommitted")
            return event["args"]["version"], receipt
        raise AssertionError("unreachable")

    def _id_of_taken(self, name: str) -> str:
        """` (id N)` for the v3 model named `name`, as v2's error told it; empty if the events do not say."""
        try:
            return f" (id {self._model_id_v3(name)})"
        except ModelregError:
            return ""

    def _dataset_for_commit_v3(self, model_id: int, root) -> tuple:
        root = _bytes32(root, "dataset root")
        accounts = [self.signer.address] if self.signer is not None else []
        accounts.append(self.get_model(model_id).owner)
        for account in accounts:
            if found := self.dataset_id(root, account):
                return (found, root, account)
        raise DatasetNotFound(f"dataset root {to_hex(root)} has no record by {' or '.join(accounts)} "
                              f"(the committer or the owner of model {model_id})")

    def _content_hash(self, content: tuple) -> bytes:
        return keccak(self.w3.codec.encode(["bytes32", "uint256", "bytes32"], list(content)))

    def verify_tensor(self, model_id: int, version: int, leaf_values: Sequence, proof: Sequence) -> bool:
        """Whether `proof` places tensor (name, dtype, shape, sha256) in the version's weights tree, on-chain."""
        proof = [_bytes32(p, "proof element") for p in proof]
        return self._call(self.contract.functions.verifyTensor(
            *self._proven(model_id, version), _leaf(leaf_values), proof))

    def verify_tensors(self, model_id: int, version: int, leaves: Sequence[Sequence], proof: Sequence,
                       proof_flags: Sequence[bool]) -> bool:
        """Whether a multiproof (leaves in the proof's order, as @openzeppelin/merkle-tree gives them) holds.

        InputInvalid for no leaves: an empty multiproof proves nothing, and the contract refuses it.
        """
        fn = self.contract.functions.verifyTensors(
            *self._proven(model_id, version), [_leaf(v) for v in leaves],
            [_bytes32(p, "proof element") for p in proof], [bool(f) for f in proof_flags])
        try:
            return self._call(fn)
        except ProofInvalid:
            return False  # malformed (flags and lengths disagree): it proves nothing

    def verify_file(self, model_id: int, version: int, leaf_values: Sequence, proof: Sequence) -> bool:
        """Whether `proof` places file (path, size, sha256) in the version's files tree, on-chain."""
        path, size, digest = leaf_values
        leaf = (path, int(size), _bytes32(digest, f"sha256 of file {path!r}"))
        proof = [_bytes32(p, "proof element") for p in proof]
        return self._call(self.contract.functions.verifyFile(
            *self._proven(model_id, version), leaf, proof))

    # ------------------------------------------------------------------ events

    def events(self, from_block: int | None = None, to_block: int | str = "latest") -> list[EventData]:
        """Every event of this contract in the block range, in chain order: the audit trail.

        Each is web3's decoded log: `event` (the name), `args`, `blockNumber`, `transactionHash`,
        `logIndex`, `blockHash`, `address`.
        """
        logs = self._logs(lambda first, last: self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": first, "toBlock": last}), from_block, to_block)
        return sorted((self._decode_log(log) for log in logs), key=lambda e: (e["blockNumber"], e["logIndex"]))

    # --------------------------------------------------------------- internals

    def _logs(self, fetch, from_block: int | None = None, to_block: int | str = "latest") -> list:
        """`fetch(first, last)` over the range, in pieces when the node caps eth_getLogs ranges
        (geth's --rpc.rangelimit, public endpoints): the node's error names its limit."""
        first = self.from_block if from_block is None else from_block
        try:
            return self._rpc(lambda: fetch(first, to_block))
        except Web3RPCError as e:
            limit = _range_limit(str(e))
            if limit is None:
                raise
        last = self._rpc(lambda: self.w3.eth.block_number) if to_block == "latest" else int(to_block)
        return [log for start in range(first, last + 1, limit + 1)
                for log in self._rpc(lambda s=start: fetch(s, min(s + limit, last)))]

    def _decode_log(self, log) -> EventData:
        return getattr(self.contract.events, self._events[bytes(log["topics"][0])])().process_log(log)

    def _decoded(self, receipt: TxReceipt, name: str) -> list[EventData]:
        return [e for e in (self._decode_log(log) for log in receipt["logs"] if log["address"] == self.address)
                if e["event"] == name]

    def _rpc(self, fn):
        return _rpc_call(fn)

    def _call(self, fn):
        try:
            return _rpc_call(fn.call)
        except _reverts() as e:
            raise self._error(_revert_data(e)) from None

    def _transact(self, fn, action: str):
        if self.signer is None:
            raise SignerInvalid(f"cannot {action}: this client has no signing key; "
                                "give a private key or keystore")
        return _Sender(self.w3, self.signer, self._error, self.sender).send(fn, action, timeout=self.receipt_timeout)

    @property
    def sender(self) -> TxSender | None:
        """The transaction sender of this client's key, made on first use with `ops`; it keeps the
        transactions sent until they are final (see modelreg.chain.sending)."""
        if self.signer is None:
            return None
        if self._sender is None:
            self._sender = TxSender(self.w3, self.signer, self.ops)
        self._sender.ops = self.ops
        return self._sender

    def _error(self, data: bytes | None) -> ModelregError:
        """The project's exception for revert data `data` (None: the node gave no reason)."""
        if not data:
            return TransactionFailed("the ModelRegistry reverted without a reason")
        if data[:4] == _PANIC:
            return TransactionFailed(f"the ModelRegistry panicked (code {int.from_bytes(data[4:], 'big'):#x})")
        spec = self._errors.get(data[:4])
        if spec is None:
            return TransactionFailed(f"the ModelRegistry reverted with unknown data {to_hex(data)}; "
                                     "is the contract at this address a ModelRegistry of this version?")
        types = [i["type"] for i in spec["inputs"]]
        values = self.w3.codec.decode(types, data[4:])
        return self._exception_for(spec["name"], *(_plain(t, v) for t, v in zip(types, values, strict=True)))

    def _exception_for(self, name: str, *a) -> ModelregError:
        match name:
            case "ModelNotFound":
                return ModelNotFound(f"model {a[0]} is not registered in the ModelRegistry at {self.address}")
            case "ModelNameTaken":
                which = f" (id {a[1]})" if len(a) > 1 else self._id_of_taken(a[0])
                return ModelNameTaken(f"a model named {a[0]!r} already exists{which}; "
                                      "choose another name, or commit to that model")
            case "AccumulatorMismatch":
                return AccumulatorMismatch(f"the accumulator of model {a[0]} moved before this commit landed "
                                           "(another commit came first); read its history again and retry")
            case "ModelNameInvalid":
                try:
                    check_model_name(a[0])
                except ModelNameInvalid as e:
                    return e  # its message shows the name to use instead
                return ModelNameInvalid(f"{a[0]!r} is not a valid model name")
            case "StringTooLong":
                return InputInvalid(f"the {a[0]} is {a[1]} bytes long; the registry takes at most {a[2]}")
            case "NotCommitter":
                return AccessDenied(f"{a[2]} did not commit version {a[1]} of model {a[0]}: a maintainer may "
                                    "revoke only its own versions; the owner may revoke any")
            case "NotModelOwner":
                return AccessDenied(f"{a[1]} is not the owner of model {a[0]}; sign with the owner's key")
            case "NotOwnerOrMaintainer":
                return AccessDenied(f"{a[1]} is neither the owner nor a maintainer of model {a[0]}; "
                                    "sign with the owner's key, or have the owner add this account "
                                    "as a maintainer")
            case "NotPendingOwner":
                return AccessDenied(f"{a[1]} is not the pending owner of model {a[0]}; "
                                    "the owner must first transfer ownership to it")
            case "AlreadyMaintainer":
                return TransactionFailed(f"{a[1]} is already a maintainer of model {a[0]}")
            case "NotMaintainer":
                return TransactionFailed(f"{a[1]} is not a maintainer of model {a[0]}")
            case "ZeroAddress":
                return InputInvalid("the zero address cannot be an owner or maintainer")
            case "ZeroRoot":
                return InputInvalid("a Merkle root of zero is reserved to mean 'none'; give the real root")
            case "DatasetNotFound":
                return DatasetNotFound(f"no dataset has id {a[0]}")
            case "TensorCountInvalid":
                return InputInvalid(f"a version has 1 to 4294967295 tensors, not {a[0]}")
            case "DuplicateVersion":
                return DuplicateRoot(f"model {a[0]} already has this content (weights root {a[2]}) as version "
                                     f"{a[1]}, not revoked; nothing new to commit")
            case "ReplacementRevoked":
                return InputInvalid(f"version {a[1]} of model {a[0]} is revoked itself and cannot be a replacement")
            case "ContentMismatch":
                return RootMismatch(f"the roots given are not those committed for version {a[1]} of model {a[0]}")
            case "EmptyMultiproof":
                return InputInvalid("a multiproof must prove at least one leaf")
            case "ParentNotFound":
                return ParentNotFound(f"parent version {a[1]} of model {a[0]} does not exist; "
                                      "name an existing (model, version) or no parent")
            case "VersionNotFound":
                return VersionNotFound(f"model {a[0]} has no version {a[1]}")
            case "VersionAlreadyRevoked":
                return TransactionFailed(f"version {a[1]} of model {a[0]} is already revoked")
            case "MerkleProofInvalidMultiproof":
                return ProofInvalid("the multiproof is malformed: its flags, proof and leaves do not fit together")
            case "SelfReplacement":
                return InputInvalid(f"version {a[1]} of model {a[0]} cannot replace itself; "
                                    "name another version or none")
        return TransactionFailed(f"the ModelRegistry refused with {name}{tuple(a)}")


class _Sender:
    """Signs, sends and waits for one transaction, keeping the nonce right under concurrent writers;
    `txs` (modelreg.chain.sending) re-sends it when dropped, stuck or reorged out."""

    def __init__(self, w3: Web3, signer: Signer, error_for, txs: TxSender | None = None):
        self.w3, self.signer, self.error_for = w3, signer, error_for
        self.txs = txs

    def send(self, fn, action: str, timeout: float):
        sender = self.signer.address
        txs = self.txs or TxSender(self.w3, self.signer, ChainOps(receipt_timeout=timeout))
        with txs.locked():
            for _ in range(_NONCE_TRIES):
                txs.recheck()  # a transaction of ours that a reorg took back goes first, with its nonce
                txs.catch_up()  # and is mined before this one is estimated: it may be this one's parent
                nonce = _rpc_call(txs.next_nonce)
                try:
                    # Estimating gas runs the call: a revert surfaces here, before anything is spent.
                    tx = _rpc_call(lambda: fn.build_transaction({"from": sender, "nonce": nonce}))  # noqa: B023
                except _reverts():
                    if txs.recheck():  # a reorg took back what this call needs (its parent): again
                        continue
                    raise self._revert(fn, action) from None
                except (Web3RPCError, _NodeValidationError) as e:
                    raise self._send_error(e, action) from None
                try:
                    receipt = _rpc_call(lambda: txs.send(tx, action))  # noqa: B023
                except (Web3RPCError, ValueError, _NodeValidationError) as e:
                    if any(s in str(e).lower() for s in _STALE_NONCE):
                        continue  # another writer used this nonce first: read the next one and re-sign
                    raise self._send_error(e, action) from None
                if receipt["status"] != 1:
                    # The state changed between estimate and inclusion; replaying names the reason.
                    raise self._revert(fn, action, mined=to_hex(receipt["transactionHash"]))
                return receipt
        raise TransactionFailed(f"cannot {action}: {_NONCE_TRIES} nonces in a row were taken by another "
                                f"writer with the key of {sender}")

    def _revert(self, fn, action: str, mined: str | None = None) -> ModelregError:
        try:
            _rpc_call(lambda: fn.call({"from": self.signer.address}))
        except _reverts() as e:
            return self.error_for(_revert_data(e))
        where = f"transaction {mined} reverted" if mined else "the call reverts"
        return TransactionFailed(f"cannot {action}: {where}, and replaying it now succeeds; retry")

    def _send_error(self, e: Exception, action: str) -> ModelregError:
        message = str(e)
        if any(s in message.lower() for s in _NO_FUNDS):
            return InsufficientFunds(f"cannot {action}: {self.signer.address} cannot pay for gas; "
                                     "fund it or use another key")
        return TransactionFailed(f"cannot {action}: the node refused the transaction: {message}")


def _record(a) -> tuple:
    """The VersionRecord tuple of a v3 VersionCommitted log's args, as its accumulator leaf hashes it."""
    return ((a["weightsRoot"], a["tensorCount"], a["filesRoot"]),
            (a["datasetId"], a["datasetRoot"], a["datasetRegistrant"]),
            a["parentModel"], a["parentVersion"], keccak(text=a["manifestCid"]), a["committer"])


def _rpc_call(fn):
    try:
        return fn()
    except _CONNECTION_ERRORS as e:
        raise ChainUnavailable(f"the JSON-RPC endpoint stopped answering ({type(e).__name__}); "
                               "check that the node is running") from None


def _range_limit(message: str) -> int | None:
    """The widest block span (last - first) a node's range-limit error allows, or None if it is not one."""
    found = _RANGE_LIMIT.search(message.lower())
    return int(found.group(1)) if found else None


def _revert_data(e: Exception) -> bytes | None:
    """The raw revert data inside a provider's revert exception, or None if it carries none."""
    data = getattr(e, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    # The in-process eth-tester provider reports `execution reverted: b'...'`, a Python bytes repr.
    text = str(e.args[0]) if e.args else ""
    _, _, rest = text.partition("execution reverted: ")
    if rest[:2] in ("b'", 'b"'):
        try:
            return ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            return None
    return None
