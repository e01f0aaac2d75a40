"""`int8-weight-only`: 2-D float weights quantized to int8, symmetric, one scale per output channel (row).

For a weight W (out, in): scale = max |W[row]| / 127 (1 for an all-zero row), Q = round(W / scale)
clamped to [-127, 127] as int8, stored under W's name; the float32 scales beside it as
`NAME.scale` (out,). Other tensors (gains, biases) stay float32. W ≈ Q * scale[:, None].
"""

from pathlib import Path

import torch

from modelreg.errors import DerivationUnavailable
from modelreg.training.config import TrainConfig
from modelreg.training.transforms import Source, Transform, gpt_logits, read_weights, write_weights

SCALE_SUFFIX = ".scale"


def apply(source: Source, params: dict, out: Path) -> None:
    tensors = {}
    for name, w in source.tensors.items():
        if name.endswith(SCALE_SUFFIX):
            raise DerivationUnavailable(f"the source has a tensor {name!r}, whose name the int8 scales use")
        if w.dim() != 2 or not w.is_floating_point():
            tensors[name] = w
            continue
        w32 = w.to(torch.float32)
        scale = w32.abs().amax(dim=1) / 127  # (out,)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        tensors[name] = torch.round(w32 / scale[:, None]).clamp(-127, 127).to(torch.int8)
        tensors[name + SCALE_SUFFIX] = scale
    write_weights(out, tensors)


def dequantize(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 weights from the int8 weights and their scales."""
    out = {}
    for name, t in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = tensors.get(name + SCALE_SUFFIX)
        out[name] = t.to(torch.float32) * scale[:, None] if scale is not None else t
    return out


def logits(out: Path, config: TrainConfig):
    return gpt_logits(dequantize(read_weights(out)), config)


TRANSFORM = Transform("int8-weight-only", apply, logits,
                      summary="2-D weights to int8, symmetric, per output channel; scales as NAME.scale")
