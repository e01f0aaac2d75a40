"""The devnet's dev accounts: the well-known test mnemonic, the same accounts anvil and hardhat use."""

from dataclasses import dataclass

from eth_account import Account

from modelreg._json import restore_recursion_limit

restore_recursion_limit()  # eth_account (py_ecc) raised it to 100,000: see modelreg._json

# Public on purpose: every dev chain (anvil, hardhat) funds these keys. Never use them elsewhere.
MNEMONIC = "test test test test test test test test test test test junk"
HD_PATH = "m/44'/60'/0'/0/{i}"
COUNT = 10
BALANCE = 10**6 * 10**18  # 1,000,000 ether each: enough that no test or run ever runs dry

Account.enable_unaudited_hdwallet_features()


@dataclass(frozen=True)
class DevAccount:
    """One funded account: its checksummed address and its private key (32 bytes)."""

    address: str
    key: bytes


def dev_accounts(count: int = COUNT) -> tuple[DevAccount, ...]:
    """The first `count` accounts of MNEMONIC along HD_PATH, in order."""
    accounts = []
    for i in range(count):
        acct = Account.from_mnemonic(MNEMONIC, account_path=HD_PATH.format(i=i))
        accounts.append(DevAccount(acct.address, bytes(acct.key)))
    return tuple(accounts)
