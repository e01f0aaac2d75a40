"""Ethereum addresses as users type them: checked, with their EIP-55 checksum, before use."""

from web3 import Web3

from modelreg.errors import InputInvalid


def checksum_address(value: str) -> str:
    """`value` in its checksummed form; InputInvalid unless it is an address whose mixed case, if any,
    is a valid EIP-55 checksum."""
    if not Web3.is_address(value):
        raise InputInvalid(f"{value!r} is not an Ethereum address (0x and 40 hex digits)")
    digits = value.removeprefix("0x")
    if digits not in (digits.lower(), digits.upper()) and not Web3.is_checksum_address(value):
        raise InputInvalid(f"{value!r} fails its mixed-case checksum (EIP-55): a character is mistyped")
    return Web3.to_checksum_address(value)
