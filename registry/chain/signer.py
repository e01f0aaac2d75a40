"""Transaction signers: a local key from hex, an environment variable or an encrypted keystore.

The key never leaves this object: it is not printed, logged or shown in a repr.
"""

import os
from pathlib import Path

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount

from modelreg._files import read_small
from modelreg._json import loads_outside, restore_recursion_limit
from modelreg.errors import JsonInvalid, SignerInvalid

restore_recursion_limit()  # eth_account (py_ecc) raised it to 100,000: see modelreg._json

MAX_KEYSTORE_BYTES = 64 * 1024  # a Web3 Secret Storage file is ~500 bytes


class Signer:
    """A local signing key; signs transactions for the chain client."""

    def __init__(self, account: LocalAccount):
        self._account = account

    @property
    def address(self) -> str:
        """The checksummed address that this key signs for."""
        return self._account.address

    def sign_transaction(self, tx: dict) -> SignedTransaction:
        return self._account.sign_transaction(tx)

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    @classmethod
    def from_key(cls, private_key: str | bytes) -> "Signer":
        """A signer from a 32-byte private key, as bytes or hex (with or without 0x)."""
        try:
            return cls(Account.from_key(private_key))
        except (ValueError, TypeError):
            # The message names the problem, never the value: it is a secret.
            raise SignerInvalid("the private key is malformed; "
                                "give 32 bytes as 64 hex digits") from None

    @classmethod
    def from_env(cls, var: str) -> "Signer":
        """A signer from the hex private key held by environment variable `var`."""
        value = os.environ.get(var)
        if not value:
            raise SignerInvalid(f"environment variable {var} is not set; "
                                f"export {var}=0x<64 hex digits> or use an encrypted keystore")
        try:
            return cls.from_key(value.strip())
        except SignerInvalid as e:
            raise SignerInvalid(f"environment variable {var}: {e}") from None

    @classmethod
    def from_keystore(cls, path: str | os.PathLike, password: str) -> "Signer":
        """A signer from an encrypted JSON keystore (Web3 Secret Storage, as geth and eth-account write)."""
        path = Path(path)
        if not path.exists():
            raise SignerInvalid(f"keystore {path} does not exist")
        raw = read_small(path, MAX_KEYSTORE_BYTES, "keystore", SignerInvalid)
        try:
            keyfile = loads_outside(raw, what=f"keystore {path}", max_depth=16)
        except JsonInvalid as e:
            raise SignerInvalid(f"keystore {path} is not a readable JSON keystore: {e}") from None
        try:
            key = Account.decrypt(keyfile, password)
        except ValueError as e:
            if "MAC mismatch" in str(e):
                raise SignerInvalid(f"wrong password for keystore {path}") from None
            raise SignerInvalid(f"keystore {path} cannot be decrypted: {e}") from None
        except (KeyError, TypeError) as e:
            raise SignerInvalid(f"keystore {path} is missing a field ({e}); is it a Web3 Secret Storage file?") from None
        return cls.from_key(key)
