"""Where this process runs: one CPU or GPU, or one rank of a torchrun / torch.distributed (DDP) job."""

import gc
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


def wrap(model, env: DistEnv):
    """The model in DDP, as training and its replay both run it.

    On the CPU with more than two ranks, the gradients are averaged by `_ordered_mean`: gloo's ring
    all-reduce sums three or more ranks' gradients in an order that depends on where each lies in its
    bucket, and DDP lays its buckets out anew after a process's first step, so a run resumed (or a
    segment replayed) mid-run would sum in another order than the uninterrupted run. Two ranks' sums are
    a + b in any order: they keep DDP's own all-reduce, as on the GPU.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    if env.device_type == "cuda":
        return DDP(model, device_ids=[env.local_rank])
    ddp = DDP(model)
    if env.world_size > 2:
        ddp.register_comm_hook(None, _ordered_mean)
    return ddp


def _ordered_mean(_state, bucket):
    """A DDP comm hook: every rank's gradients gathered, summed in rank order and divided by the world size.

    Elementwise, in a fixed order: the same bits whatever the bucket layout.
    """
    mine = bucket.buffer()
    world = dist.get_world_size()
    parts = [torch.empty_like(mine) for _ in range(world)]

    def mean(_fut):
        total = parts[0].clone()
        for part in parts[1:]:
            total.add_(part)
        return total.div_(world)

    return dist.all_gather(parts, mine, async_op=True).get_future().then(mean)


def all_positions(env: DistEnv, ix: list[int]) -> list[int]:
    """Every rank's sample positions of this step, rank 0's first: what a DDP step trained on.

    A collective: every rank calls it at every step, with as many positions as the others.
    """
    mine = torch.tensor(ix, dtype=torch.long, device=env.device)
    gathered = [torch.empty_like(mine) for _ in range(env.world_size)]
    dist.all_gather(gathered, mine)
    return torch.cat(gathered).tolist()


def barrier(env: DistEnv) -> None:
    if env.world_size > 1:
        dist.barrier()


def teardown(env: DistEnv, together: bool = True) -> None:
    """Leave the process group, every rank together, so that no rank aborts on its way out.

    gloo sometimes aborts a rank ("terminate called without an active exception", exit 134) at
    interpreter exit, after destroy_process_group has returned: in 6 of 60 runs when a peer was still
    busy as the rank left, in 3 of 60 with a barrier first, in none of 60 with a barrier and a garbage
    collection before the group goes (bench/gloo_teardown.py). So: a barrier, a collection, the group.
    together=False is the way out of a run that failed here: no barrier, which the peers, waiting in
    another collective, would never reach (whoever started them stops them).
    """
    if env.world_size > 1 and dist.is_initialized():
        if together:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()
