"""A version's privacy record (`modelreg-privacy-v1`): the epsilon and delta a checkpoint manifest states.

Two bases, never confused in any output:
- "transcript": modelreg's DP-SGD trainer wrote it; the manifest's training transcript
  (`modelreg-training-transcript-v2`) holds the parameters, and `audit replay` re-executes
  the clipping and the noise and recomputes epsilon with the accountant.
- "claimed": a user's own DP trainer said so (the Python API, BackgroundCommitter);
  recorded as given, not checkable by replay.
A manifest without one makes no privacy claim: outputs say the model was not trained with DP.
"""

import math

from modelreg.errors import ManifestInvalid

PRIVACY_FORMAT = "modelreg-privacy-v1"
BASES = {"transcript": "DP-SGD, re-executed by audit replay",
         "claimed": "claimed, not checkable by replay"}
_OPTIONAL = {"mechanism", "noise_multiplier", "sample_rate", "max_grad_norm", "steps", "accountant"}


def from_transcript(dp: dict) -> dict:
    """The privacy record of a DP-SGD segment's transcript section: epsilon spent up to its last step."""
    return {"format": PRIVACY_FORMAT, "basis": "transcript", "mechanism": dp["mechanism"],
            "epsilon": dp["epsilon_spent"], "delta": dp["delta"], "noise_multiplier": dp["noise_multiplier"],
            "sample_rate": dp["sample_rate"], "max_grad_norm": dp["max_grad_norm"]}


def claimed(claim: dict) -> dict:
    """The privacy record of a user's claim {"epsilon", "delta", and optionally mechanism, noise_multiplier, ...}."""
    if not isinstance(claim, dict):
        raise ManifestInvalid(f"a privacy claim must be a dict with epsilon and delta, got {type(claim).__name__}")
    unknown = sorted(set(claim) - {"epsilon", "delta"} - _OPTIONAL)
    if unknown:
        raise ManifestInvalid(f"privacy claim has unknown keys {unknown}; known: epsilon, delta, "
                              f"{', '.join(sorted(_OPTIONAL))}")
    record = {"format": PRIVACY_FORMAT, "basis": "claimed", **claim}
    check(record)
    return record


def check(p) -> None:
    """ManifestInvalid unless p is a `modelreg-privacy-v1` record."""
    if not isinstance(p, dict) or p.get("format") != PRIVACY_FORMAT or p.get("basis") not in BASES:
        raise ManifestInvalid(f"privacy must be a {PRIVACY_FORMAT} object with basis one of {sorted(BASES)}")
    for key in ("epsilon", "delta"):
        v = p.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ManifestInvalid(f"privacy {key} {v!r} must be a finite non-negative number")
    if not p["delta"] < 1:
        raise ManifestInvalid(f"privacy delta {p['delta']!r} must be below 1")


def describe(p: dict | None) -> str:
    """One line for terminals and reports."""
    if not p:
        return "not trained with differential privacy (no privacy claim)"
    return f"ε = {p['epsilon']:.4g}, δ = {p['delta']:.3g} ({BASES[p['basis']]})"
