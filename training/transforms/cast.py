"""`cast`: every floating-point tensor cast to fp16 or bf16 (round to nearest even), the rest unchanged."""

from pathlib import Path

import torch

from modelreg.training.config import TrainConfig
from modelreg.training.transforms import Source, Transform, gpt_logits, read_weights, write_weights

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def apply(source: Source, params: dict, out: Path) -> None:
    dtype = _DTYPES[params["dtype"]]
    write_weights(out, {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.tensors.items()})


def logits(out: Path, config: TrainConfig):
    # The cast weights, widened back to float32 exactly: the figure measures the rounding of the weights.
    return gpt_logits(read_weights(out), config)


TRANSFORM = Transform("cast", apply, logits, params={"dtype": ("fp16", "bf16")},
                      summary="floating-point tensors cast to dtype=fp16|bf16")
