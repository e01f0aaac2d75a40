"""AdamW whose every operation is IEEE-exact on any x86-64 CPU: the optimizer of portable CPU training.

torch's AdamW takes the square root of the second moments with `torch.sqrt`, which on a build with
MKL goes through MKL's vector math (vsSqrt). That routine is accurate to about one ulp, not
correctly rounded, and MKL picks its code path by the CPU it finds, whatever MKL_CBWR says: on an
AMD EPYC (Zen 4) its results differ in the last bit from the correctly rounded ones that it gives on
an Intel Haswell (docs/replay.md, measured with training/stepdump.py under qemu). One differing bit in
the denominator of step 1 and every weight differs from then on.

`IeeeAdamW` is torch's single-tensor AdamW (decoupled weight decay, bias corrections, the same
operations in the same order and the same state, so its checkpoints load in torch's AdamW and back)
with one change: the square root is numpy's, the hardware's correctly rounded `sqrtps`, which IEEE
754 defines to the bit. Every other operation (mul, lerp, addcmul, div, add, addcdiv) is an ATen
vectorized kernel of IEEE-exact arithmetic at the pinned AVX2 width.
"""

import numpy as np
import torch

NAME = "adamw-ieee-sqrt"  # what a transcript's numerics record as "optimizer"


def ieee_sqrt(t: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root of a float32 CPU tensor (numpy's np.sqrt: the sqrtps instruction)."""
    return torch.from_numpy(np.sqrt(t.contiguous().numpy()))


class IeeeAdamW(torch.optim.AdamW):
    """torch.optim.AdamW (no amsgrad, not capturable, not fused), with a correctly rounded square root."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                step = state["step"].item()
                p.mul_(1 - lr * wd)
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** step)
                denom = (ieee_sqrt(exp_avg_sq) / ((1 - beta2 ** step) ** 0.5)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss
