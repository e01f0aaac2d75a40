"""The model-name rule the ModelRegistry (v3) enforces: 1 to 64 of `a-z`, `0-9` and `-`, starting
with a letter, with no `--` and no leading or trailing `-`.

Names are canonical so that they cannot be mistaken for ids (`3`) or for each other: look-alikes
such as `GPT-tiny`, `gpt_tiny`, `gpt.tiny`, a non-breaking hyphen or an invisible zero-width space
cannot be registered next to `gpt-tiny`; `-` is the one separator. The contract refuses any other
name; this module says, before a transaction is spent, which name to use instead.
"""

import re
import unicodedata

from modelreg.errors import ModelNameInvalid

MAX_LENGTH = 64
_VALID = re.compile(r"[a-z](?:-?[a-z0-9])*")
RULE = (f"model names are 1 to {MAX_LENGTH} characters from a-z, 0-9 and '-', start with a letter, "
        "and have no '--' and no trailing '-'")


def is_valid_model_name(name: str) -> bool:
    return len(name) <= MAX_LENGTH and _VALID.fullmatch(name) is not None


def normalize_model_name(name: str) -> str:
    """The closest valid name: NFKC, lower case, trimmed; spaces, dashes of any script, `_`, `.`
    and slashes become one `-`; anything else outside the rule is dropped; a name that would start
    with a digit gets `model-` in front; the result is cut to 64 characters. Empty if nothing is left."""
    out = []
    for ch in unicodedata.normalize("NFKC", name).lower().strip():
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
        elif unicodedata.category(ch) in ("Pd", "Zs") or ch in "/\\._":
            out.append("-")
        # anything else (format characters such as a zero-width space, symbols, letters outside
        # ASCII) is dropped: there is no single ASCII reading of it
    suggestion = re.sub("-+", "-", "".join(out)).strip("-")
    if suggestion and not suggestion[0].isalpha():
        suggestion = "model-" + suggestion
    return suggestion[:MAX_LENGTH].rstrip("-")


def check_model_name(name: str) -> str:
    """`name` itself if the contract accepts it; ModelNameInvalid, showing the name to use, if not."""
    if is_valid_model_name(name):
        return name
    suggestion = normalize_model_name(name)
    if suggestion:
        raise ModelNameInvalid(f"{name!r} is not a valid model name ({RULE}); use {suggestion!r}")
    raise ModelNameInvalid(f"{name!r} is not a valid model name ({RULE}) and has no usable characters")
