"""The torch device a command asked for, checked before anything is written."""

import torch

from modelreg.errors import InputInvalid


def check_device(device: str | None) -> None:
    if device is None:
        return
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise InputInvalid(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputInvalid(f"--device {device}, but torch sees no CUDA device here; use --device cpu")
