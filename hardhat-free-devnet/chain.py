"""The persistent dev chain: py-evm over the on-disk store, and every JSON-RPC method it answers.

Why a database and not a journal replayed on start: py-evm's chain is built over any
key-value database, so giving it one on disk (store.py) keeps the real blocks, receipts and
state. Start-up reads the head pointer and costs the same for 10 blocks or 100,000; nothing
is re-executed, so a block's hash cannot change between runs. eth-tester's PyEVMBackend
supplies the tester chain class, genesis and block/transaction serializers around it.

Every transaction is mined into its own block at once (auto-mine, like anvil). A block's
timestamp is max(parent + 1, wall clock + evm_increaseTime offset) and its prevrandao is
keccak(parent hash): both are stored in the block, so a restart replays nothing.
"""

import inspect
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rlp
from eth import EVM_RECURSION_LIMIT
from eth.abc import SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.db.schema import SchemaV1
from eth.exceptions import CanonicalHeadNotFound, HeaderNotFound, Revert, TransactionNotFound
from eth.vm.forks import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_tester.backends.pyevm.main import get_default_genesis_params
from eth_tester.backends.pyevm.serializers import serialize_block, serialize_transaction
from eth_utils import ValidationError as EVMValidationError
from eth_utils import keccak, to_checksum_address

from modelreg._atomic import disk_full
from modelreg._json import restore_recursion_limit

from . import rpc
from .accounts import BALANCE, dev_accounts
from .rpc import RpcError, invalid
from .store import Store

# py-evm needs its own limit for 1024-deep calls; py_ecc raised it further, to 100,000.
restore_recursion_limit(EVM_RECURSION_LIMIT)

CHAIN_ID = 1337  # not anvil's 31337, so per-chain deployment records never collide
GENESIS_TIMESTAMP = 1_735_689_600  # 2025-01-01T00:00:00Z: a fixed genesis gives a fixed genesis hash
PRIORITY_FEE = 10**9  # 1 gwei tip suggested to clients, as anvil does
CLIENT_VERSION = "modelreg-devnet/0.1.0 (py-evm, eth-tester)"
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: past it, dates in reports overflow
FILTER_TIMEOUT = 300  # seconds a filter lives unpolled: geth's 5 minutes
MAX_FILTERS = 10_000  # refuses a client that installs filters in a loop and never polls them
_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


class _DevChain(MiningChain):
    chain_id = CHAIN_ID
    vm_configuration = ((0, PragueVM),)

    def create_header_from_parent(self, parent_header, **header_params):
        # A constant gas limit, as eth-tester's chain keeps it.
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)


class Devnet:
    """The chain on disk under `directory`, answering JSON-RPC methods by name."""

    def __init__(self, directory: Path, clock=time.time):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.store = Store(directory / "chain.sqlite")
        self.accounts = dev_accounts()
        self._keys = {bytes.fromhex(a.address[2:]): a.key for a in self.accounts}
        self._clock = clock
        self._lock = threading.RLock()  # one caller at a time: py-evm objects are not thread-safe
        # Polling filters live in memory, as geth's do, and lapse when not polled for FILTER_TIMEOUT.
        self._filters: dict[str, _Filter] = {}
        self._open()

    def _open(self) -> None:
        db = AtomicDB(self.store)
        try:
            ChainDB(db).get_canonical_head()
            self.chain = _DevChain(db)
        except CanonicalHeadNotFound:
            params = get_default_genesis_params({"timestamp": GENESIS_TIMESTAMP})
            state = {bytes.fromhex(a.address[2:]): {"balance": BALANCE, "nonce": 0, "code": b"",
                                                    "storage": {}} for a in self.accounts}
            self.chain = _DevChain.from_genesis(db, params, state)
            self.store.commit()

    def close(self) -> None:
        self.store.close()

    # --- dispatch ------------------------------------------------------------------------
    def call(self, method: str, params) -> object:
        """Answer one JSON-RPC call; raises RpcError for anything the client got wrong."""
        fn = getattr(self, "rpc_" + method, None) if isinstance(method, str) else None
        if fn is None:
            raise RpcError(rpc.METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
        params = [] if params is None else params
        if not isinstance(params, list):
            raise invalid(f"{method}: params must be an array")
        try:
            inspect.signature(fn).bind(*params)
        except TypeError:
            expected = [p.name for p in inspect.signature(fn).parameters.values()]
            raise invalid(f"{method}: expected params [{', '.join(expected)}], "
                          f"got {len(params)} value(s)") from None
        with self._lock:
            return fn(*params)

    def _write(self, change):
        """Run a state change; make it durable, or on failure leave no trace of it."""
        try:
            result = change()
            self.store.commit()
            return result
        except BaseException as e:
            self.store.discard()
            self._open()
            if disk_full(e, self.store.path):
                raise RpcError(rpc.SERVER_ERROR, f"no space left on the device writing {self.store.path}; "
                                                 "nothing was stored: free space there and send it again") from None
            raise

    # --- blocks and headers ----------------------------------------------------------------
    @property
    def head(self):
        return self.chain.get_canonical_head()

    def _header(self, block, must_exist: bool = True):
        tag = rpc.parse_block(block)
        try:
            if isinstance(tag, bytes):
                header = self.chain.get_block_header_by_hash(tag)
                if (header.block_number > self.head.block_number
                        or self.chain.get_canonical_block_hash(header.block_number) != header.hash):
                    raise HeaderNotFound(tag)
                return header
            if tag == "earliest":
                tag = 0
            if isinstance(tag, str) or tag == self.head.block_number:
                return self.head
            if tag > self.head.block_number:
                raise HeaderNotFound(tag)
            return self.chain.get_canonical_block_header_by_number(tag)
        except HeaderNotFound:
            if must_exist:
                raise RpcError(rpc.SERVER_ERROR, f"header not found: {block}") from None
            return None

    def _state(self, block):
        return self.chain.get_vm(self._header(block)).state

    def _block_json(self, header, full: bool) -> dict | None:
        if header is None:
            return None
        block = self.chain.get_block_by_header(header)
        out = _rpc_keys(serialize_block(block, bool(full), False))
        out["miner"] = out.pop("coinbase")
        out["extraData"] = rpc.data(header.extra_data)  # eth-tester pads it; clients expect it as is
        out["logsBloom"] = rpc.data(header.bloom.to_bytes(256, "big"))
        if full:
            out["transactions"] = [{**_tx_json(t), "blockTimestamp": out["timestamp"]}
                                   for t in out["transactions"]]
        return out

    # --- chain and account reads -----------------------------------------------------------
    def rpc_eth_chainId(self):
        return rpc.quantity(CHAIN_ID)

    def rpc_net_version(self):
        return str(CHAIN_ID)

    def rpc_web3_clientVersion(self):
        return CLIENT_VERSION

    def rpc_eth_accounts(self):
        return [a.address for a in self.accounts]

    def rpc_eth_blockNumber(self):
        return rpc.quantity(self.head.block_number)

    def rpc_eth_getBalance(self, address, block="latest"):
        return rpc.quantity(self._state(block).get_balance(rpc.parse_address(address, "address")))

    def rpc_eth_getTransactionCount(self, address, block="latest"):
        return rpc.quantity(self._state(block).get_nonce(rpc.parse_address(address, "address")))

    def rpc_eth_getCode(self, address, block="latest"):
        return rpc.data(self._state(block).get_code(rpc.parse_address(address, "address")))

    def rpc_eth_getStorageAt(self, address, slot, block="latest"):
        slot = rpc.parse_quantity(slot, "slot")
        value = self._state(block).get_storage(rpc.parse_address(address, "address"), slot)
        return rpc.data(value.to_bytes(32, "big"))

    def rpc_eth_gasPrice(self):
        return rpc.quantity(self.chain.header.base_fee_per_gas + PRIORITY_FEE)

    def rpc_eth_maxPriorityFeePerGas(self):
        return rpc.quantity(PRIORITY_FEE)

    def rpc_eth_getBlockByNumber(self, block, full=False):
        return self._block_json(self._header(block, must_exist=False), full)

    def rpc_eth_getBlockByHash(self, block_hash, full=False):
        rpc.parse_hash(block_hash, "blockHash")
        return self._block_json(self._header({"blockHash": block_hash}, must_exist=False), full)

    def rpc_eth_getBlockTransactionCountByNumber(self, block):
        header = self._header(block, must_exist=False)
        return None if header is None else rpc.quantity(len(self.chain.get_block_by_header(header).transactions))

    def rpc_eth_getBlockTransactionCountByHash(self, block_hash):
        rpc.parse_hash(block_hash, "blockHash")
        return self.rpc_eth_getBlockTransactionCountByNumber({"blockHash": block_hash})

    def rpc_eth_getTransactionByBlockNumberAndIndex(self, block, index):
        header = self._header(block, must_exist=False)
        index = rpc.parse_quantity(index, "index")
        if header is None:
            return None
        found = self.chain.get_block_by_header(header)
        if index >= len(found.transactions):
            return None
        return self.rpc_eth_getTransactionByHash(rpc.data(found.transactions[index].hash))

    def rpc_eth_getTransactionByBlockHashAndIndex(self, block_hash, index):
        rpc.parse_hash(block_hash, "blockHash")
        return self.rpc_eth_getTransactionByBlockNumberAndIndex({"blockHash": block_hash}, index)

    def rpc_eth_getBlockReceipts(self, block):
        header = self._header(block, must_exist=False)
        if header is None:
            return None
        found = self.chain.get_block_by_header(header)
        return [self._receipt_json(found, i) for i in range(len(found.transactions))]

    def rpc_eth_syncing(self):
        return False  # the only node of its chain: always at the head

    def rpc_net_listening(self):
        return True

    def rpc_web3_sha3(self, data):
        return rpc.data(keccak(rpc.parse_data(data, "data")))

    def rpc_eth_coinbase(self):
        return rpc.data(self.chain.header.coinbase)

    def rpc_eth_feeHistory(self, block_count, newest="latest", percentiles=None):
        count = rpc.parse_quantity(block_count, "blockCount")
        if not 1 <= count <= 1024:
            raise invalid(f"blockCount: must be between 1 and 1024, got {count}")
        percentiles = percentiles or []
        if (not isinstance(percentiles, list) or percentiles != sorted(percentiles)
                or any(not isinstance(p, (int, float)) or not 0 <= p <= 100 for p in percentiles)):
            raise invalid(f"rewardPercentiles: expected increasing numbers in [0, 100], "
                          f"got {percentiles!r}")
        newest = self._header(newest)
        oldest = max(0, newest.block_number - count + 1)
        headers = [self.chain.get_canonical_block_header_by_number(n)
                   for n in range(oldest, newest.block_number + 1)]
        child = self.chain.create_header_from_parent(newest)
        out = {
            "oldestBlock": rpc.quantity(oldest),
            "baseFeePerGas": [rpc.quantity(h.base_fee_per_gas) for h in [*headers, child]],
            "gasUsedRatio": [h.gas_used / h.gas_limit for h in headers],
            # No blob transaction is ever mined here, so blob gas stays at its 1-wei floor.
            "baseFeePerBlobGas": [rpc.quantity(1)] * (len(headers) + 1),
            "blobGasUsedRatio": [0.0] * len(headers),
        }
        if percentiles:
            out["reward"] = [[rpc.quantity(r) for r in self._rewards(h, percentiles)]
                             for h in headers]
        return out

    def _rewards(self, header, percentiles) -> list[int]:
        """Tips paid at each gas-weighted percentile of the block, as geth computes them."""
        block = self.chain.get_block_by_header(header)
        receipts = block.get_receipts(self.chain.chaindb)
        gas, tips, previous = [], [], 0
        for tx, receipt in zip(block.transactions, receipts):
            gas.append(receipt.gas_used - previous)
            previous = receipt.gas_used
            tips.append(_effective_price(tx, header) - header.base_fee_per_gas)
        if not tips:
            return [0] * len(percentiles)
        ranked = sorted(zip(tips, gas))
        rewards, i, cumulative = [], 0, ranked[0][1]
        for p in percentiles:
            while cumulative < header.gas_used * p / 100 and i < len(ranked) - 1:
                i += 1
                cumulative += ranked[i][1]
            rewards.append(ranked[i][0])
        return rewards

    # --- transactions and receipts ---------------------------------------------------------
    def _find(self, tx_hash):
        tx_hash = rpc.parse_hash(tx_hash, "transactionHash")
        try:
            number, index = self.chain.chaindb.get_transaction_index(tx_hash)
        except TransactionNotFound:
            return None
        if number > self.head.block_number:
            return None
        block = self.chain.get_canonical_block_by_number(number)
        if index >= len(block.transactions) or block.transactions[index].hash != tx_hash:
            return None
        return block, index

    def rpc_eth_getTransactionByHash(self, tx_hash):
        found = self._find(tx_hash)
        if found is None:
            return None
        block, index = found
        tx = _tx_json(_rpc_keys(serialize_transaction(block, block.transactions[index], index,
                                                      False)))
        return {**tx, "blockTimestamp": rpc.quantity(block.header.timestamp)}

    def rpc_eth_getTransactionReceipt(self, tx_hash):
        found = self._find(tx_hash)
        return None if found is None else self._receipt_json(*found)

    def _receipt_json(self, block, index: int) -> dict:
        tx = block.transactions[index]
        receipts = block.get_receipts(self.chain.chaindb)
        receipt = receipts[index]
        previous = receipts[index - 1].gas_used if index else 0
        first_log = sum(len(r.logs) for r in receipts[:index])
        created = _created_address(tx) if not tx.to else None
        return {
            "transactionHash": rpc.data(tx.hash),
            "transactionIndex": rpc.quantity(index),
            "blockHash": rpc.data(block.hash),
            "blockNumber": rpc.quantity(block.number),
            "from": to_checksum_address(tx.sender).lower(),
            "to": rpc.data(tx.to) if tx.to else None,
            "cumulativeGasUsed": rpc.quantity(receipt.gas_used),
            "gasUsed": rpc.quantity(receipt.gas_used - previous),
            "effectiveGasPrice": rpc.quantity(_effective_price(tx, block.header)),
            "contractAddress": rpc.data(created) if created else None,
            "logs": [_log_json(block, tx, index, first_log + i, log)
                     for i, log in enumerate(receipt.logs)],
            "logsBloom": rpc.data(receipt.bloom.to_bytes(256, "big")),
            "type": rpc.quantity(_tx_type(tx)),
            "status": rpc.quantity(1 if receipt.state_root == b"\x01" else 0),
        }

    def rpc_eth_sendRawTransaction(self, raw):
        raw = rpc.parse_data(raw, "transaction")
        try:
            tx = self.chain.get_vm().get_transaction_builder().decode(raw)
            tx.sender  # noqa: B018 - recovers the signer now, so a bad signature fails here
        except Exception as e:  # rlp, signature and field errors all mean the same to a client
            raise invalid(f"transaction: not a valid signed transaction ({e})") from None
        return rpc.data(self._mine(tx))

    def rpc_eth_sendTransaction(self, tx):
        tx = rpc.parse_object(tx, "transaction")
        sender = rpc.parse_address(tx.get("from"), "transaction.from")
        if sender not in self._keys:
            raise RpcError(rpc.SERVER_ERROR, f"{to_checksum_address(sender)} is not a dev account;"
                           " sign the transaction yourself and use eth_sendRawTransaction")
        fields = {"chainId": CHAIN_ID, "value": 0, "data": b"",
                  "nonce": self.head_state().get_nonce(sender)}
        for name in ("nonce", "value", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
            if tx.get(name) is not None:
                fields[name] = rpc.parse_quantity(tx[name], f"transaction.{name}")
        fields["data"] = rpc.parse_data(tx.get("data", tx.get("input", "0x")), "transaction.data")
        if tx.get("to") is not None:
            fields["to"] = to_checksum_address(rpc.parse_address(tx["to"], "transaction.to"))
        if "gasPrice" not in fields:
            fields.setdefault("maxPriorityFeePerGas", PRIORITY_FEE)
            fields.setdefault("maxFeePerGas",
                              2 * self.chain.header.base_fee_per_gas + fields["maxPriorityFeePerGas"])
        if "gas" not in fields:
            fields["gas"] = int(self.rpc_eth_estimateGas(tx), 16)
        signed = Account.sign_transaction(fields, self._keys[sender])
        return self.rpc_eth_sendRawTransaction(rpc.data(signed.raw_transaction))

    def head_state(self):
        return self.chain.get_vm(self.head).state

    def _mine(self, tx: SignedTransactionAPI | None, timestamp: int | None = None) -> bytes:
        """Mine one block holding `tx` (or nothing); returns the transaction or block hash."""
        if tx is not None:
            self._check_admissible(tx)

        def mine():
            parent = self.head
            now = int(self._clock()) + int(self.store.get_meta("time_offset", "0"))
            chosen = timestamp if timestamp is not None else int(self.store.get_meta("next_timestamp", "") or 0)
            if chosen:
                self.store.set_meta("next_timestamp", "")  # used once, in this same transaction
            self.chain.header = self.chain.header.copy(
                timestamp=chosen or max(parent.timestamp + 1, now))
            if tx is not None:
                self.chain.apply_transaction(tx)
            block = self.chain.mine_block(mix_hash=keccak(parent.hash), blob_gas_used=0)
            self._index_logs(block)
            return block.hash if tx is None else tx.hash

        try:
            return self._write(mine)
        except EVMValidationError as e:
            raise RpcError(rpc.SERVER_ERROR, f"transaction rejected: {e}") from None

    def _check_admissible(self, tx) -> None:
        """The checks a node makes before mining, with the messages geth and anvil use."""
        chain_id = getattr(tx, "chain_id", None)
        if chain_id is not None and chain_id != CHAIN_ID:
            raise RpcError(rpc.SERVER_ERROR, f"invalid chain id: the transaction is for chain "
                           f"{chain_id}, this devnet is chain {CHAIN_ID}")
        state = self.head_state()
        expected = state.get_nonce(tx.sender)
        if tx.nonce < expected:
            raise RpcError(rpc.SERVER_ERROR, f"nonce too low: next nonce {expected}, tx nonce "
                           f"{tx.nonce} (ask eth_getTransactionCount for the next one)")
        if tx.nonce > expected:
            raise RpcError(rpc.SERVER_ERROR, f"nonce too high: next nonce {expected}, tx nonce "
                           f"{tx.nonce}; this devnet mines at once and keeps no queue")
        price = getattr(tx, "max_fee_per_gas", None) or tx.gas_price
        cost = tx.gas * price + tx.value
        balance = state.get_balance(tx.sender)
        if balance < cost:
            raise RpcError(rpc.SERVER_ERROR, f"insufficient funds for gas * price + value: "
                           f"balance {balance}, tx cost {cost}, overshot {cost - balance}")
        if tx.gas > self.chain.header.gas_limit:
            raise RpcError(rpc.SERVER_ERROR, f"exceeds block gas limit: gas {tx.gas}, "
                           f"limit {self.chain.header.gas_limit}")

    def _index_logs(self, block) -> None:
        rows, log_index = [], 0
        for tx_index, (tx, receipt) in enumerate(
                zip(block.transactions, block.get_receipts(self.chain.chaindb))):
            for log in receipt.logs:
                topics = [t.to_bytes(32, "big") for t in log.topics]
                padded = (topics + [None] * 4)[:4]
                rows.append((block.number, log_index, block.header.timestamp, block.hash, tx.hash, tx_index,
                             log.address, *padded, b"".join(topics), log.data))
                log_index += 1
        self.store.add_logs(rows)

    # --- execution without mining ----------------------------------------------------------
    def _execute(self, tx: dict, block, overrides=None, watch=None):
        """Run a call in a costless copy of the state after `block`; returns the computation.

        `overrides` is eth_call's state override set, applied to the copy first; `watch(state)`, if
        given, is called on the copy before the call runs (to observe what the call touches).
        """
        header = self._header(block)
        with self.chain.get_vm(header).in_costless_state() as state:
            _override(state, overrides)
            spoof = self._spoof(tx, header, state.get_nonce)
            if watch is not None:
                watch(state)
            try:
                return state.apply_transaction(spoof)
            except EVMValidationError as e:
                raise RpcError(rpc.SERVER_ERROR, f"call rejected: {e}") from None

    def _spoof(self, tx: dict, header, nonce_of=None) -> SpoofTransaction:
        tx = rpc.parse_object(tx, "transaction")
        sender = (rpc.parse_address(tx["from"], "transaction.from") if tx.get("from")
                  else b"\x00" * 20)
        to = rpc.parse_address(tx["to"], "transaction.to") if tx.get("to") else b""
        data = rpc.parse_data(tx.get("data", tx.get("input", "0x")) or "0x", "transaction.data")
        gas = (rpc.parse_quantity(tx["gas"], "transaction.gas") if tx.get("gas")
               else header.gas_limit)
        value = rpc.parse_quantity(tx["value"], "transaction.value") if tx.get("value") else 0
        nonce = (nonce_of or self.chain.get_vm(header).state.get_nonce)(sender)
        # Fees are zero: a call or an estimate costs nothing, as in geth's eth_call.
        unsigned = self.chain.get_vm(header).get_transaction_builder() \
            .new_unsigned_dynamic_fee_transaction(
                chain_id=CHAIN_ID, nonce=nonce, max_priority_fee_per_gas=0, max_fee_per_gas=0,
                gas=gas, to=to, value=value, data=data, access_list=())
        return SpoofTransaction(unsigned, from_=sender)

    def rpc_eth_call(self, tx, block="latest", state_override=None):
        computation = self._execute(tx, block, state_override)
        _raise_if_failed(computation)
        return rpc.data(computation.output)

    def rpc_eth_createAccessList(self, tx, block="latest"):
        """The accounts and storage slots the call touches, as geth's access-list tracer lists them:
        slots of every contract, addresses other than the sender, the recipient and precompiles."""
        tx = rpc.parse_object(tx, "transaction")
        header = self._header(block)
        sender = rpc.parse_address(tx["from"], "transaction.from") if tx.get("from") else b"\x00" * 20
        skip = {sender, header.coinbase, *self.chain.get_vm(header).state.computation_class.get_precompiles()}
        if tx.get("to"):
            skip.add(rpc.parse_address(tx["to"], "transaction.to"))
        touched: dict[bytes, set[int]] = {}

        def watch(state):
            # Setup warms the sender, recipient and precompiles first; the call's own accesses follow.
            mark_address, mark_slot = state.mark_address_warm, state.mark_storage_warm

            def address_warm(address):
                if address not in skip:
                    touched.setdefault(address, set())
                mark_address(address)

            def slot_warm(address, slot):
                touched.setdefault(address, set()).add(slot)
                mark_slot(address, slot)
            state.mark_address_warm, state.mark_storage_warm = address_warm, slot_warm

        computation = self._execute(tx, block, watch=watch)
        gas = rpc.parse_quantity(tx["gas"], "transaction.gas") if tx.get("gas") else header.gas_limit
        used = gas - computation.get_gas_remaining()
        answer = {"accessList": [{"address": to_checksum_address(a).lower(),
                                  "storageKeys": [rpc.data(k.to_bytes(32, "big")) for k in sorted(slots)]}
                                 for a, slots in touched.items()],
                  "gasUsed": rpc.quantity(used - min(computation.get_gas_refund(), used // 5))}
        if computation.is_error:
            answer["error"] = "execution reverted" if isinstance(computation.error, Revert) \
                else str(computation.error) or type(computation.error).__name__
        return answer

    def rpc_eth_estimateGas(self, tx, block="latest"):
        _raise_if_failed(self._execute(tx, block))
        header = self._header(block)
        return rpc.quantity(self.chain.estimate_gas(self._spoof(tx, header), header))

    # --- logs ----------------------------------------------------------------------------
    def rpc_eth_getLogs(self, query):
        query = rpc.parse_object(query, "filter")
        where, args = [], []
        if query.get("blockHash") is not None:
            if "fromBlock" in query or "toBlock" in query:
                raise invalid("filter: blockHash cannot be combined with fromBlock/toBlock")
            header = self._header({"blockHash": query["blockHash"]})
            where.append("block_number = ?")
            args.append(header.block_number)
        else:
            first = self._header(query.get("fromBlock") or "latest", must_exist=False)
            last = self._header(query.get("toBlock") or "latest", must_exist=False) or self.head
            if first is None:
                return []
            if first.block_number > last.block_number:
                raise invalid(f"filter: fromBlock {first.block_number} is after toBlock "
                              f"{last.block_number}")
            where.append("block_number BETWEEN ? AND ?")
            args += [first.block_number, last.block_number]
        addresses = query.get("address")
        if addresses is not None:
            addresses = addresses if isinstance(addresses, list) else [addresses]
            where.append(f"address IN ({', '.join('?' * len(addresses))})")
            args += [rpc.parse_address(a, "filter.address") for a in addresses]
        topics = query.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 4:
            raise invalid(f"filter.topics: expected up to 4 positions, got {topics!r}")
        for position, wanted in enumerate(topics):
            if wanted is None:
                continue
            wanted = wanted if isinstance(wanted, list) else [wanted]
            where.append(f"topic{position} IN ({', '.join('?' * len(wanted))})")
            args += [rpc.parse_hash(t, f"filter.topics[{position}]") for t in wanted]
        if not addresses and addresses is not None:
            return []
        rows = self.store.query_logs(" AND ".join(where), args)
        return [_log_row_json(row) for row in rows]

    # --- polling filters -----------------------------------------------------------------
    def _install(self, kind: str, query: dict | None) -> str:
        now = time.monotonic()
        self._filters = {k: f for k, f in self._filters.items() if now - f.polled < FILTER_TIMEOUT}
        if len(self._filters) >= MAX_FILTERS:
            raise RpcError(rpc.SERVER_ERROR, f"too many filters: {MAX_FILTERS} are installed; "
                           "uninstall some with eth_uninstallFilter")
        filter_id = rpc.quantity(int.from_bytes(os.urandom(16), "big"))
        self._filters[filter_id] = _Filter(kind, query, self.head.block_number + 1, now)
        return filter_id

    def _filter(self, filter_id) -> "_Filter":
        found = self._filters.get(filter_id) if isinstance(filter_id, str) else None
        if found is None or time.monotonic() - found.polled >= FILTER_TIMEOUT:
            raise RpcError(rpc.SERVER_ERROR, "filter not found")
        return found

    def rpc_eth_newFilter(self, query):
        query = rpc.parse_object(query, "filter")
        if query.get("blockHash") is not None:
            raise invalid("filter: eth_newFilter takes a block range, not a blockHash")
        self.rpc_eth_getLogs({**query, "fromBlock": "latest", "toBlock": "latest"})  # validates it
        return self._install("logs", query)

    def rpc_eth_newBlockFilter(self):
        return self._install("blocks", None)

    def rpc_eth_uninstallFilter(self, filter_id):
        return self._filters.pop(filter_id, None) is not None if isinstance(filter_id, str) else False

    def rpc_eth_getFilterChanges(self, filter_id):
        """What arrived since the last poll: new block hashes, or the new blocks' matching logs."""
        found = self._filter(filter_id)
        first, head = found.next_block, self.head.block_number
        found.next_block, found.polled = head + 1, time.monotonic()
        if found.kind == "blocks":
            return [rpc.data(self.chain.get_canonical_block_hash(n)) for n in range(first, head + 1)]
        # Only blocks new since the last poll, and only those inside the filter's own range.
        start, end = found.query.get("fromBlock"), found.query.get("toBlock")
        if start not in (None, *rpc.BLOCK_TAGS):
            first = max(first, rpc.parse_quantity(start, "filter.fromBlock"))
        if end not in (None, *rpc.BLOCK_TAGS):
            head = min(head, rpc.parse_quantity(end, "filter.toBlock"))
        if first > head:
            return []
        return self.rpc_eth_getLogs({**found.query, "fromBlock": rpc.quantity(first),
                                     "toBlock": rpc.quantity(head)})

    def rpc_eth_getFilterLogs(self, filter_id):
        found = self._filter(filter_id)
        if found.kind != "logs":
            raise RpcError(rpc.SERVER_ERROR, "filter not found: a block filter has no logs")
        found.polled = time.monotonic()
        return self.rpc_eth_getLogs(found.query)

    # --- dev controls ----------------------------------------------------------------------
    def rpc_evm_mine(self, timestamp=None):
        if isinstance(timestamp, dict):  # hardhat/anvil's {"timestamp": t, "blocks": n} form
            timestamp = timestamp.get("timestamp")
        when = None if timestamp is None else rpc.parse_quantity(timestamp, "timestamp")
        if when is not None and not self.head.timestamp < when <= MAX_TIMESTAMP:
            raise invalid(f"timestamp: {when} is not after the head block's {self.head.timestamp} "
                          f"or past {MAX_TIMESTAMP} (9999-12-31)")
        self._mine(None, when)
        return "0x0"

    def rpc_evm_increaseTime(self, seconds):
        seconds = rpc.parse_quantity(seconds, "seconds")
        offset = int(self.store.get_meta("time_offset", "0")) + seconds
        if int(self._clock()) + offset > MAX_TIMESTAMP:
            raise invalid(f"seconds: {seconds} would move the clock past {MAX_TIMESTAMP} "
                          f"(9999-12-31), the latest time this chain stores; nothing was changed")
        self._write(lambda: self.store.set_meta("time_offset", str(offset)))
        return offset  # a plain number, as anvil and hardhat answer

    def rpc_evm_setNextBlockTimestamp(self, timestamp):
        """The next block's time; later blocks count on from it (the clock offset moves with it)."""
        when = rpc.parse_quantity(timestamp, "timestamp")
        if not self.head.timestamp < when <= MAX_TIMESTAMP:
            raise invalid(f"timestamp: {when} must be after the head block's {self.head.timestamp} "
                          f"and at most {MAX_TIMESTAMP} (9999-12-31); nothing was changed")
        def record():
            self.store.set_meta("time_offset", str(when - int(self._clock())))
            self.store.set_meta("next_timestamp", str(when))

        self._write(record)
        return None

    def _snapshots(self) -> dict[str, dict]:
        return json.loads(self.store.get_meta("snapshots", "{}"))

    def rpc_evm_snapshot(self):
        snapshots = self._snapshots()
        sid = int(self.store.get_meta("next_snapshot", "1"))
        snapshots[str(sid)] = {"block": self.head.hash.hex(),
                               "time_offset": self.store.get_meta("time_offset", "0")}

        def record():
            self.store.set_meta("snapshots", json.dumps(snapshots))
            self.store.set_meta("next_snapshot", str(sid + 1))

        self._write(record)
        return rpc.quantity(sid)

    def rpc_evm_revert(self, snapshot_id):
        sid = rpc.parse_quantity(snapshot_id, "snapshotId")
        snapshots = self._snapshots()
        if str(sid) not in snapshots:
            return False
        target = self.chain.get_block_header_by_hash(bytes.fromhex(snapshots[str(sid)]["block"]))
        offset = snapshots[str(sid)]["time_offset"]
        # Like anvil, a snapshot is used up by reverting to it, and so are the later ones.
        kept = {k: v for k, v in snapshots.items() if int(k) < sid}

        def rewind():
            self._rewind_to(target)
            self.store.set_meta("snapshots", json.dumps(kept))
            self.store.set_meta("time_offset", offset)

        self._write(rewind)
        self._open()
        return True

    def _rewind_to(self, target) -> None:
        """Make `target` the head: later blocks and their transactions stop being canonical.

        Their number-to-hash entries stay (py-evm's gap tracking reads them when the next
        block at that height is written, and overwrites them); every lookup here stops at
        the head, so they are never served.
        """
        db = self.chain.chaindb.db
        for number in range(target.block_number + 1, self.head.block_number + 1):
            block = self.chain.get_canonical_block_by_number(number)
            for tx in block.transactions:
                del db[SchemaV1.make_transaction_hash_to_block_lookup_key(tx.hash)]
        db[SchemaV1.make_canonical_head_hash_lookup_key()] = target.hash
        self.store.drop_logs_after(target.block_number)


@dataclass
class _Filter:
    """A polling filter: what it matches, the first block not yet reported, when it was last polled."""

    kind: str  # "logs" or "blocks"
    query: dict | None
    next_block: int
    polled: float


def _override(state, overrides) -> None:
    """Apply eth_call's state override set ({address: {balance, nonce, code, state | stateDiff}})."""
    if overrides is None:
        return
    for address, fields in rpc.parse_object(overrides, "stateOverride").items():
        where = f"stateOverride[{address}]"
        account = rpc.parse_address(address, where)
        fields = rpc.parse_object(fields, where)
        unknown = set(fields) - {"balance", "nonce", "code", "state", "stateDiff"}
        if unknown:
            raise invalid(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if "state" in fields and "stateDiff" in fields:
            raise invalid(f"{where}: give state or stateDiff, not both")
        if fields.get("balance") is not None:
            state.set_balance(account, rpc.parse_quantity(fields["balance"], f"{where}.balance"))
        if fields.get("nonce") is not None:
            state.set_nonce(account, rpc.parse_quantity(fields["nonce"], f"{where}.nonce"))
        if fields.get("code") is not None:
            state.set_code(account, rpc.parse_data(fields["code"], f"{where}.code"))
        if fields.get("state") is not None:
            state.delete_storage(account)  # `state` replaces the whole storage, `stateDiff` patches it
        for slot, value in rpc.parse_object(fields.get("state") or fields.get("stateDiff") or {},
                                            f"{where}.state").items():
            state.set_storage(account, int.from_bytes(rpc.parse_hash(slot, f"{where} slot"), "big"),
                              int.from_bytes(rpc.parse_hash(value, f"{where} value"), "big"))


# --- formatting: eth-tester's snake_case values into the JSON-RPC shapes geth and anvil use ---
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _rpc_keys(value):
    if isinstance(value, dict):
        return {_camel(k): _rpc_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rpc_keys(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return rpc.quantity(value)
    return rpc.data(value)


def _tx_json(tx):
    if isinstance(tx, str):  # a hash, when the block is asked for without full transactions
        return tx
    tx["input"] = tx.pop("data")
    if tx["to"] == "0x":
        tx["to"] = None
    if "accessList" in tx:
        tx["accessList"] = [{"address": a, "storageKeys": [rpc.data(int(k, 16).to_bytes(32, "big"))
                                                           for k in keys]}
                            for a, keys in tx["accessList"]]
    return tx


def _log_json(block, tx, tx_index: int, log_index: int, log) -> dict:
    return {
        "address": rpc.data(log.address),
        "topics": [rpc.data(t.to_bytes(32, "big")) for t in log.topics],
        "data": rpc.data(log.data),
        "blockHash": rpc.data(block.hash),
        "blockNumber": rpc.quantity(block.number),
        "blockTimestamp": rpc.quantity(block.header.timestamp),
        "transactionHash": rpc.data(tx.hash),
        "transactionIndex": rpc.quantity(tx_index),
        "logIndex": rpc.quantity(log_index),
        "removed": False,
    }


def _log_row_json(row) -> dict:
    number, log_index, timestamp, block_hash, tx_hash, tx_index, address, topics, data = row
    return {
        "address": rpc.data(address),
        "topics": [rpc.data(topics[i:i + 32]) for i in range(0, len(topics), 32)],
        "data": rpc.data(data),
        "blockHash": rpc.data(block_hash),
        "blockNumber": rpc.quantity(number),
        "blockTimestamp": rpc.quantity(timestamp),
        "transactionHash": rpc.data(tx_hash),
        "transactionIndex": rpc.quantity(tx_index),
        "logIndex": rpc.quantity(log_index),
        "removed": False,
    }


def _tx_type(tx) -> int:
    return getattr(tx, "type_id", None) or 0


def _effective_price(tx, header) -> int:
    if _tx_type(tx) >= 2:
        return min(tx.max_fee_per_gas, tx.max_priority_fee_per_gas + header.base_fee_per_gas)
    return tx.gas_price


def _created_address(tx) -> bytes:
    return keccak(rlp.encode([tx.sender, tx.nonce]))[12:]


def _raise_if_failed(computation) -> None:
    if not computation.is_error:
        return
    error = computation.error
    if isinstance(error, Revert):
        output = computation.output
        raise RpcError(rpc.EXECUTION_REVERTED, "execution reverted" + _revert_reason(output),
                       rpc.data(output))
    raise RpcError(rpc.SERVER_ERROR, f"execution failed: {type(error).__name__}"
                   + (f": {error}" if str(error) else ""))


def _revert_reason(output: bytes) -> str:
    try:
        if output[:4] == _ERROR_STRING:
            return ": " + abi_decode(["string"], output[4:])[0]
        if output[:4] == _PANIC:
            return f": panic code {abi_decode(['uint256'], output[4:])[0]:#x}"
    except Exception:  # malformed revert data: the raw bytes still go back in `data`
        return ""
    return ": custom error " + rpc.data(output[:4]) if len(output) >= 4 else ""
