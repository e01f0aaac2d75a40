"""`merge-lora`: a PEFT-style LoRA adapter merged into its base: W' = W + scale * (B @ A), per adapted weight.

The adapter is a second input: a safetensors file pinned to IPFS, named by `--param adapter=CID`
(the CID binds its bytes; the derivation records it with the other parameters), holding for each
adapted module `base_model.model.MODULE.lora_A.weight` (r, in) and `...lora_B.weight` (out, r), as
PEFT saves them. `scale` is PEFT's lora_alpha / r. The sum is computed in float64 and rounded once
to the weight's dtype: a BLAS that splits the product differently changes the float64 result far
below float32's rounding, so the merged bytes agree unless a value lands on a rounding tie.
"""

import math
import re
from pathlib import Path

import torch
from safetensors.torch import load as st_load

from modelreg.errors import DerivationUnavailable, TransformParamsInvalid
from modelreg.training.config import TrainConfig
from modelreg.training.transforms import Source, Transform, gpt_logits, read_weights, write_weights

_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight$")


def apply(source: Source, params: dict, out: Path) -> None:
    try:
        scale = float(params["scale"])
    except ValueError:
        scale = math.nan
    if not math.isfinite(scale):
        raise TransformParamsInvalid(f"merge-lora's scale must be a finite number (lora_alpha / r), got {params['scale']!r}")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in st_load(Path(params["adapter"]).read_bytes()).items():
        m = _KEY.match(key)
        if m is None:
            raise DerivationUnavailable(f"adapter tensor {key!r} is not MODULE.lora_A.weight or MODULE.lora_B.weight")
        pairs.setdefault(m.group(1) + ".weight", {})[m.group(2)] = t
    tensors = dict(source.tensors)
    for name, ab in sorted(pairs.items()):
        w = tensors.get(name)
        if w is None or set(ab) != {"A", "B"}:
            raise DerivationUnavailable(f"the adapter's {name} has no weight of that name in the base, or lacks "
                                        "lora_A or lora_B")
        delta = ab["B"].to(torch.float64) @ ab["A"].to(torch.float64)  # (out, r) @ (r, in)
        if delta.shape != w.shape:
            raise DerivationUnavailable(f"the adapter's update of {name} is {tuple(delta.shape)}, the weight "
                                        f"{tuple(w.shape)}")
        tensors[name] = (w.to(torch.float64) + scale * delta).to(w.dtype)
    write_weights(out, tensors)


def logits(out: Path, config: TrainConfig):
    return gpt_logits(read_weights(out), config)


TRANSFORM = Transform("merge-lora", apply, logits, params={"adapter": (), "scale": ()}, inputs=("adapter",),
                      summary="a LoRA adapter (adapter=CID of its safetensors, scale=alpha/r) merged into the base")
