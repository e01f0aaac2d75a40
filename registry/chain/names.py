"""The model-name rule the ModelRegistry enforces: 1 to 64 of `a-z`, `0-9`, `.`, `_` and `-`.

Names are canonical so that look-alikes (`GPT-tiny`, `gpt-tiny ` with a trailing space, a
non-breaking hyphen, an invisible zero-width space) cannot be registered next to `gpt-tiny`.
The contract refuses any other name; this module says, before a transaction is spent, which
name to use instead.
"""

import re
import unicodedata

from modelreg.errors import ModelNameInvalid

MAX_LENGTH = 64
_VALID = re.compile(r"[a-z0-9._-]{1,64}")


def normalize_model_name(name: str) -> str:
    """The closest valid name: NFKC, lower case, trimmed; spaces and dashes of any script become
    `-`, anything else outside the rule is dropped, and the result is cut to 64 characters."""
    out = []
    for ch in unicodedata.normalize("NFKC", name).lower().strip():
        if _VALID.fullmatch(ch):
            out.append(ch)
        elif unicodedata.category(ch) in ("Pd", "Zs") or ch in "/\\":
            out.append("-")
        # anything else (format characters such as a zero-width space, symbols, letters outside
        # ASCII) is dropped: there is no single ASCII reading of it
    return "".join(out).strip("-")[:MAX_LENGTH]


def check_model_name(name: str) -> str:
    """`name` itself if the contract accepts it; ModelNameInvalid, showing the name to use, if not."""
    if _VALID.fullmatch(name):
        return name
    suggestion = normalize_model_name(name)
    rule = f"model names are 1 to {MAX_LENGTH} characters from a-z, 0-9, '.', '_' and '-'"
    if suggestion:
        raise ModelNameInvalid(f"{name!r} is not a valid model name ({rule}); use {suggestion!r}")
    raise ModelNameInvalid(f"{name!r} is not a valid model name ({rule}) and has no usable characters")
