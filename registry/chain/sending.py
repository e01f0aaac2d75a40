"""Transactions that survive a public network: a nonce lock per key, re-sends, fee bumps, reorgs, confirmations.

A testnet drops transactions from its mempool, leaves one with too low a fee pending for ever, and
takes blocks back. `TxSender` keeps every transaction it sent until it is final (deep enough, or
covered by the `safe`/`finalized` tag) in a ledger: the signed bytes, every hash it had (a fee bump
makes a new one), and the block that holds it. Each poll re-checks the ledger:

- mined, and the block still canonical: nothing to do; final: dropped from the ledger;
- mined once, but the block left the chain (a reorg): the same signed transaction is sent again,
  so it carries the same nonce and the same parent: it can be included once, never twice;
- unknown to the node (dropped): sent again, as it was;
- pending longer than `resend_after`: signed again with the same nonce and fees raised by the
  minimum replacement step (geth and anvil demand 10 % more on both fees), up to `max_fee_gwei`.

Every step is said once through `notify`. Two processes signing with one key never race for a
nonce: sending holds a lock file per key in the data directory.
"""

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from modelreg._hex import to_hex
from modelreg.errors import FeeCapReached, NonceLockHeld, TransactionFailed

GWEI = 10**9
FINALITY_TAGS = ("safe", "finalized")
_ALREADY_SENT = ("already known", "known transaction", "already imported", "already in")
_NONCE_USED = ("nonce too low", "nonce has already been used", "invalid transaction nonce")
_UNDERPRICED = ("underpriced", "max fee per gas less than block base fee", "fee too low", "feecap",
                "fee cap less than block base fee", "gas price below minimum")


def _bumped(fee: int) -> int:
    """The least fee a node accepts as a replacement: 10 % more (geth's default price bump), plus one wei
    so that rounding never lands exactly on the bound."""
    return fee + fee // 10 + 1


@dataclass(frozen=True)
class ChainOps:
    """How transactions are sent and waited for. Defaults suit a chain that mines what it is sent at
    once and never reorgs (the embedded devnet, anvil); `service.config` sets them for others."""

    confirmations: int = 0  # blocks deep (the head block is 1) before final; 0: final once mined
    finality: str | None = None  # "safe" or "finalized": final when that tag's block holds it
    wait: bool = False  # return only once final, re-sending across reorgs meanwhile
    resend_after: float = 30.0  # seconds pending before a fee bump: 2 to 3 blocks of a 12 s chain
    max_fee_gwei: float | None = None  # cap on maxFeePerGas; None: bump without a cap until the timeout
    receipt_timeout: float = 120.0  # seconds for one transaction to be mined, re-sends included
    poll: float = 0.25  # seconds between receipt checks: each costs two requests to a rate-limited endpoint
    lock_dir: Path | None = None  # where the per-key nonce lock lives; None: a lock within this process
    notify: Callable[[str], None] = field(default=lambda message: None, compare=False)

    @property
    def watches(self) -> bool:
        """Whether a mined transaction is kept and re-checked until final."""
        return self.finality is not None or self.confirmations > 1

    def describe(self) -> str:
        return self.finality or f"{self.confirmations}"


@dataclass
class Sent:
    """One transaction (one nonce) this sender is responsible for until it is final."""

    nonce: int
    action: str
    tx: dict  # the unsigned transaction, to sign again with higher fees
    raw: bytes  # the latest signed form
    hashes: list[str]
    sent_at: float
    block: int | None = None
    block_hash: str | None = None
    recommits: int = 0  # times re-sent after its block left the chain
    at_cap: bool = False

    @property
    def tx_hash(self) -> str:
        return self.hashes[-1]

    def to_record(self) -> dict:
        """What a journal keeps to watch this transaction after a restart (JSON: ints and hex strings)."""
        return {"nonce": self.nonce, "raw_tx": to_hex(self.raw), "tx_hashes": list(self.hashes),
                "unsigned_tx": {k: v if isinstance(v, int | str) else to_hex(v) for k, v in self.tx.items()
                                if k != "accessList"},
                "block": self.block, "block_hash": self.block_hash, "action": self.action}

    @classmethod
    def from_record(cls, record: dict) -> "Sent":
        return cls(nonce=record["nonce"], action=record.get("action", "commit"), tx=dict(record["unsigned_tx"]),
                   raw=bytes.fromhex(record["raw_tx"].removeprefix("0x")), hashes=list(record["tx_hashes"]),
                   sent_at=time.monotonic(), block=record.get("block"), block_hash=record.get("block_hash"))


@dataclass
class SenderStats:
    """What the sender had to do, for the benchmark and for reports."""

    resends: int = 0  # dropped transactions sent again
    bumps: int = 0
    recommits: int = 0  # transactions sent again after a reorg
    drop_to_resend: list[float] = field(default_factory=list)  # seconds from noticing a drop to its re-send


class TxSender:
    """Sends transactions for one key on one chain and watches them until final."""

    def __init__(self, w3, signer, ops: ChainOps | None = None):
        self.w3, self.signer, self.ops = w3, signer, ops or ChainOps()
        self.ledger: dict[int, Sent] = {}  # nonce -> what was sent with it, until final
        self.stats = SenderStats()
        self._thread_lock = threading.RLock()
        self._said_dropped: set[str] = set()

    # -- locking and nonces ------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this key's nonce: in this process always, across processes when `lock_dir` is set."""
        with self._thread_lock:
            if self.ops.lock_dir is None:
                yield
                return
            path = Path(self.ops.lock_dir) / f"nonce-{self.signer.address.lower()}.lock"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + self.ops.receipt_timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise NonceLockHeld(f"another process has held the nonce lock {path} of "
                                                f"{self.signer.address} for {self.ops.receipt_timeout:.0f} s") from None
                        time.sleep(0.05)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def next_nonce(self) -> int:
        """The nonce for a new transaction: past the node's pending count and past every one this
        sender still watches (a reorg can take the node's count back below them)."""
        pending = self.w3.eth.get_transaction_count(self.signer.address, "pending")
        return max([pending, *(n + 1 for n in self.ledger)])

    # -- sending -----------------------------------------------------------------------------------------
    def send(self, tx: dict, action: str) -> dict:
        """Sign `tx` (its nonce set, under `locked()`), send it, and wait until it is mined (until final
        with `ops.wait`); the receipt. Raises ValueError-like node errors of the first send unchanged."""
        tx = self._capped(dict(tx))
        signed = self.signer.sign_transaction(tx)
        entry = Sent(nonce=tx["nonce"], action=action, tx=tx, raw=bytes(signed.raw_transaction),
                     hashes=[to_hex(signed.hash)], sent_at=time.monotonic())
        try:
            self.w3.eth.send_raw_transaction(entry.raw)
        except Exception as e:  # web3's node errors share no base class beyond ValueError
            if not any(s in str(e).lower() for s in _UNDERPRICED):
                raise  # the caller explains it
            # The base fee rose between the estimate and the send, or the node's price floor did.
            self._bump(entry, why="refused by the node as underpriced")
        self.ledger[entry.nonce] = entry
        try:
            return self.wait(entry, final=self.ops.wait)
        finally:
            if entry.block is None or not self.ops.watches or self._is_final(entry):
                self.ledger.pop(entry.nonce, None)

    def wait(self, entry: Sent, *, final: bool) -> dict:
        """Poll until `entry` is mined on the canonical chain (and final, with `final`), re-sending it
        when dropped, stuck or reorged out, and re-checking the other watched transactions meanwhile."""
        deadline = time.monotonic() + self.ops.receipt_timeout
        while True:
            self.recheck(skip=entry.nonce)
            receipt = self._canonical_receipt(entry)
            now = time.monotonic()
            if receipt is not None:
                if not final or self._is_final(entry):
                    return receipt
            elif entry.block is None and not self._known(entry):
                self.stats.resends += 1
                if entry.tx_hash not in self._said_dropped:  # a node that keeps dropping it is said once
                    self._said_dropped.add(entry.tx_hash)
                    self.ops.notify(f"transaction {entry.tx_hash} ({entry.action}) was dropped by the node; "
                                    f"sending it again (nonce {entry.nonce})")
                self._push(entry)
                self.stats.drop_to_resend.append(time.monotonic() - now)
            elif entry.block is None and now - entry.sent_at > self.ops.resend_after:
                self._bump(entry)
            if now > deadline:
                raise TransactionFailed(f"cannot {entry.action}: transaction {entry.tx_hash} was not "
                                        f"{'final' if receipt else 'mined'} within "
                                        f"{self.ops.receipt_timeout:.0f} s; check the node")
            time.sleep(self.ops.poll)

    def recheck(self, skip: int | None = None) -> list[Sent]:
        """Re-check every watched transaction in nonce order: re-send those whose block left the chain,
        forget those now final. The ones re-sent after a reorg."""
        resent = []
        for nonce in sorted(self.ledger):
            entry = self.ledger[nonce]
            if nonce == skip:
                continue
            was = entry.block
            receipt = self._canonical_receipt(entry)
            if receipt is None and was is not None:
                resent.append(entry)
            elif receipt is None and not self._known(entry):
                self._push(entry)  # dropped before it was ever mined (after a reorg, say)
            elif receipt is not None and self._is_final(entry):
                del self.ledger[nonce]
        return resent

    def catch_up(self) -> None:
        """Wait until every watched transaction that a reorg or a drop sent back to the mempool is mined
        again: a new transaction's gas estimate may depend on it (a commit on its parent version)."""
        for nonce in sorted(self.ledger):
            entry = self.ledger.get(nonce)
            if entry is not None and entry.block is None:
                self.wait(entry, final=False)

    def entry_for(self, tx_hash: str) -> Sent | None:
        """The watched transaction that had hash `tx_hash` (a fee bump gives it several)."""
        return next((e for e in self.ledger.values() if tx_hash in e.hashes), None)

    def watch(self, entry: Sent) -> None:
        """Keep a transaction a previous process sent (from its journal) until it is final."""
        self.ledger[entry.nonce] = entry

    # -- internals ---------------------------------------------------------------------------------------
    def _canonical_receipt(self, entry: Sent) -> dict | None:
        """The receipt of any of `entry`'s hashes whose block is on the canonical chain; a block that
        left the chain re-sends the transaction (once per reorg), and None comes back."""
        for tx_hash in reversed(entry.hashes):
            receipt = self._receipt(tx_hash)
            if receipt is not None and self.w3.eth.get_block(receipt["blockNumber"])["hash"] == receipt["blockHash"]:
                block_hash = to_hex(receipt["blockHash"])
                if entry.block_hash is not None and block_hash != entry.block_hash:
                    # A reorg took its block, and the node put it in a new one before this poll saw it gone.
                    self.stats.recommits += 1
                    entry.recommits += 1
                    self.ops.notify(f"block {entry.block} ({entry.block_hash}) left the canonical chain; transaction "
                                    f"{to_hex(receipt['transactionHash'])} ({entry.action}) is now in block "
                                    f"{receipt['blockNumber']}")
                entry.block, entry.block_hash = receipt["blockNumber"], block_hash
                return receipt
        if entry.block is not None:
            self.stats.recommits += 1
            entry.recommits += 1
            self.ops.notify(f"block {entry.block} ({entry.block_hash}) left the canonical chain with transaction "
                            f"{entry.tx_hash} ({entry.action}); sending it again with the same nonce and parent")
            entry.block = entry.block_hash = None
            self._push(entry)
        return None

    def _receipt(self, tx_hash: str) -> dict | None:
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _known(self, entry: Sent) -> bool:
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction(entry.tx_hash) is not None
        except TransactionNotFound:
            return False

    def _is_final(self, entry: Sent) -> bool:
        if entry.block is None:
            return False
        if self.ops.finality is not None:
            return entry.block <= self.w3.eth.get_block(self.ops.finality)["number"]
        return self.w3.eth.block_number - entry.block + 1 >= self.ops.confirmations

    def _push(self, entry: Sent) -> None:
        """Send `entry`'s latest signed form; a node that has it already, or has mined it, is fine."""
        try:
            self.w3.eth.send_raw_transaction(entry.raw)
        except Exception as e:  # web3's node errors have no common base beyond ValueError subclasses
            message = str(e).lower()
            if any(s in message for s in _ALREADY_SENT + _NONCE_USED):
                return  # the next receipt check tells mined from taken
            if any(s in message for s in _UNDERPRICED):
                self._bump(entry, why="refused by the node as underpriced")
                return
            raise TransactionFailed(f"cannot {entry.action}: the node refused transaction {entry.tx_hash} "
                                    f"when it was sent again: {e}") from None
        entry.sent_at = time.monotonic()

    def _bump(self, entry: Sent, why: str | None = None) -> None:
        """Sign `entry` again with the same nonce and fees raised by the minimum replacement step, and at
        least enough for the current base fee; FeeCapReached past `max_fee_gwei`."""
        why = why or f"not mined in {self.ops.resend_after:g} s"
        tx = dict(entry.tx)
        base = self._next_base_fee()
        if "gasPrice" in tx:
            tx["gasPrice"] = max(_bumped(tx["gasPrice"]), base)
            offered = tx["gasPrice"]
        else:
            tx["maxPriorityFeePerGas"] = _bumped(tx["maxPriorityFeePerGas"])
            tx["maxFeePerGas"] = max(_bumped(tx["maxFeePerGas"]), 2 * base + tx["maxPriorityFeePerGas"])
            offered = tx["maxFeePerGas"]
        cap = self._cap()
        if cap is not None and offered > cap:
            if entry.at_cap or _fee(entry.tx) >= cap:
                raise FeeCapReached(f"cannot {entry.action}: transaction {entry.tx_hash} is stuck at the fee cap "
                                    f"of {self.ops.max_fee_gwei:g} gwei (the base fee is {base / GWEI:.3g} gwei)")
            tx = self._capped(tx)
            entry.at_cap = True
        signed = self.signer.sign_transaction(tx)
        entry.tx, entry.raw = tx, bytes(signed.raw_transaction)
        entry.hashes.append(to_hex(signed.hash))
        self.stats.bumps += 1
        self.ops.notify(f"transaction {entry.hashes[-2]} ({entry.action}) {why}; sent again as {entry.tx_hash} "
                        f"with max fee "
                        f"{_fee(tx) / GWEI:.3g} gwei, priority fee {tx.get('maxPriorityFeePerGas', 0) / GWEI:.3g} "
                        f"gwei (nonce {entry.nonce})")
        self._push(entry)

    def _next_base_fee(self) -> int:
        """The base fee the next block will charge: the pending block's (anvil, geth), else the latest's."""
        try:
            return self.w3.eth.get_block("pending").get("baseFeePerGas", 0)
        except Exception:  # a node without a pending block
            return self.w3.eth.get_block("latest").get("baseFeePerGas", 0)

    def _cap(self) -> int | None:
        return None if self.ops.max_fee_gwei is None else int(self.ops.max_fee_gwei * GWEI)

    def _capped(self, tx: dict) -> dict:
        cap = self._cap()
        if cap is None:
            return tx
        if "gasPrice" in tx:
            tx["gasPrice"] = min(tx["gasPrice"], cap)
        else:
            tx["maxFeePerGas"] = min(tx["maxFeePerGas"], cap)
            tx["maxPriorityFeePerGas"] = min(tx["maxPriorityFeePerGas"], tx["maxFeePerGas"])
        return tx


def _fee(tx: dict) -> int:
    return tx.get("maxFeePerGas", tx.get("gasPrice", 0))
