"""Derivations: the manifest record of a version made from another by a named, deterministic transform.

A derived version (`modelreg derive`, or `modelreg commit --derived-from`) carries, under the
checkpoint manifest's optional "derivation" key, a `modelreg-derivation-v1`:

    {"format": "modelreg-derivation-v1",
     "kind": "derived by NAME",                 the parent edge's kind (contract v2 has no field for it)
     "source": {"model_id", "version", "weights_root", "tensor_count", "files_root"},
     "transform": {"name", "params": {k: str}},
     "checkable": bool,                         NAME is a transform this modelreg can re-run
     "tools": {"modelreg", "torch", "onnx", "onnxruntime"} or {} when derived elsewhere,
     "fidelity": {...} or null}                 how far the outputs moved (modelreg.training.transforms)

The source's roots are the chain's at derivation time, so `audit replay` can re-run the transform
from exactly that source and compare the roots it gets with the derived version's.
"""

import math
import re

from modelreg.errors import ManifestInvalid

DERIVATION_FORMAT = "modelreg-derivation-v1"
_KEYS = {"format", "kind", "source", "transform", "checkable", "tools", "fidelity"}
_SOURCE_KEYS = {"model_id", "version", "weights_root", "tensor_count", "files_root"}
_HASH = re.compile(r"0x[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PARAM = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_MAX_TEXT = 256


def kind_of(name: str) -> str:
    """The parent edge's kind for transform `name`."""
    return f"derived by {name}"


def derivation_record(*, source: dict, name: str, params: dict, checkable: bool, tools: dict,
                      fidelity: dict | None) -> dict:
    """A checked `modelreg-derivation-v1` dict; `source` holds the chain's roots of the source version."""
    record = {"format": DERIVATION_FORMAT, "kind": kind_of(name), "source": dict(source),
              "transform": {"name": name, "params": dict(params)}, "checkable": checkable,
              "tools": dict(tools), "fidelity": fidelity}
    check_derivation(record)
    return record


def check_derivation(d) -> None:
    """ManifestInvalid unless `d` is a well-formed `modelreg-derivation-v1`."""
    if not isinstance(d, dict) or set(d) != _KEYS or d["format"] != DERIVATION_FORMAT:
        raise ManifestInvalid(f"derivation must be a {DERIVATION_FORMAT} with exactly the keys {sorted(_KEYS)}")
    source, transform = d["source"], d["transform"]
    if not isinstance(source, dict) or set(source) != _SOURCE_KEYS:
        raise ManifestInvalid(f"derivation source must have exactly the keys {sorted(_SOURCE_KEYS)}")
    for key in ("model_id", "version", "tensor_count"):
        if not isinstance(source[key], int) or isinstance(source[key], bool) or source[key] < 0:
            raise ManifestInvalid(f"derivation source {key} {source[key]!r} must be a non-negative integer")
    for key in ("weights_root", "files_root"):
        if not isinstance(source[key], str) or not _HASH.fullmatch(source[key]):
            raise ManifestInvalid(f"derivation source {key} {source[key]!r} must be \"0x\" + 64 lowercase hex digits")
    if not isinstance(transform, dict) or set(transform) != {"name", "params"}:
        raise ManifestInvalid("derivation transform must be {\"name\", \"params\"}")
    if not isinstance(transform["name"], str) or not _NAME.fullmatch(transform["name"]):
        raise ManifestInvalid(f"transform name {transform['name']!r} must be 1 to 64 of a-z, 0-9, '.', '_', '-'")
    params = transform["params"]
    if not isinstance(params, dict) or not all(isinstance(k, str) and _PARAM.fullmatch(k) and _printable(v)
                                               for k, v in params.items()):
        raise ManifestInvalid("derivation transform params must map names (a-z, 0-9, '_') to printable strings "
                              f"of at most {_MAX_TEXT} characters")
    if d["kind"] != kind_of(transform["name"]):
        raise ManifestInvalid(f"derivation kind {d['kind']!r} must be {kind_of(transform['name'])!r}")
    if not isinstance(d["checkable"], bool):
        raise ManifestInvalid("derivation checkable must be true or false")
    if not isinstance(d["tools"], dict) or not all(_NAME.fullmatch(str(k)) and _printable(v)
                                                   for k, v in d["tools"].items()):
        raise ManifestInvalid("derivation tools must map tool names to printable version strings")
    _check_fidelity(d["fidelity"])


def _check_fidelity(f) -> None:
    """null, or the figures `audit show` prints: a probe, a finite max |logit difference|, perplexities."""
    if f is None:
        return
    if not isinstance(f, dict) or set(f) != {"probe", "max_abs_logit_diff", "perplexity"}:
        raise ManifestInvalid("derivation fidelity must be null or {\"probe\", \"max_abs_logit_diff\", \"perplexity\"}")
    probe, ppl = f["probe"], f["perplexity"]
    if not isinstance(probe, dict) or not all(_number(v) for v in probe.values()) or not _number(f["max_abs_logit_diff"]):
        raise ManifestInvalid("derivation fidelity's probe and max_abs_logit_diff must be numbers")
    if ppl is not None and not (isinstance(ppl, dict) and all(_number(ppl.get(k)) for k in ("source", "derived"))):
        raise ManifestInvalid("derivation fidelity's perplexity must be null or hold source and derived numbers")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _printable(v) -> bool:
    # Shown in terminals, tables and reports: no control characters (escape sequences), no markup brackets.
    return isinstance(v, str) and len(v) <= _MAX_TEXT and v.isprintable() and not set(v) & set("[]<>")
