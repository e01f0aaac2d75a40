"""Where this process runs: one CPU or GPU, or one rank of a torchrun / torch.distributed (DDP) job."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from modelreg.errors import ConfigInvalid


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job; rank 0 alone writes checkpoints and calls the hook."""

    rank: int
    local_rank: int
    world_size: int
    device: str  # "cpu" or "cuda:N"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device_type(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"


def setup(device: str | None = None) -> DistEnv:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK, join the process group (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigInvalid(f"device {device!r} asked for, but torch sees no CUDA device; use 'cpu'")
        if device == "cuda":
            device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    elif device != "cpu":
        raise ConfigInvalid(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo",
                                rank=rank, world_size=world_size)
    return DistEnv(rank, local_rank, world_size, device)


def barrier(env: DistEnv) -> None:
    if env.world_size > 1:
        dist.barrier()


def teardown(env: DistEnv) -> None:
    if env.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
