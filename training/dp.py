"""DP-SGD in the one step function: Poisson sampling over committed examples, per-sample clipping, seeded noise.

The privacy unit is an *example*: a disjoint window of block_size + 1 tokens of the
training token stream, example k starting at token k * (block_size + 1). Its place in
the dataset (file and offset) is what the batch leaf of a step commits, as for any step.

Each step draws its batch by Poisson sampling: every example joins independently with
probability q = batch_size / examples, from a generator seeded with (seed, step, rank, 2).
That is the sampling the accountant's guarantee assumes (a fixed-size batch would need a
different analysis), so the batch size varies from step to step around batch_size.

The step (Abadi et al. 2016, as Opacus implements it): per-sample gradients with
torch.func (vmap over grad), each clipped to an L2 norm of at most C over all parameters,
summed, plus Gaussian noise N(0, (sigma * C)^2) per coordinate drawn in named-parameter
order from a generator seeded with (seed, step, rank, 3), divided by the expected batch
size; then the run's own AdamW step. The noise multiplier sigma is calibrated for the
target (epsilon, delta) over the planned steps by the RDP accountant of Google's
`dp-accounting` (Poisson-subsampled Gaussian, composed over the steps); the tests compare
its epsilon with Opacus' RDP accountant for the same parameters.

After every step the sha256 of the parameters is recorded, so a replay names the first
step whose noise or clipping differs from the claim, not only the segment's end.
"""

import hashlib
import math
import warnings
from dataclasses import asdict, dataclass

import torch

from modelreg.errors import ConfigInvalid

SAMPLING = "poisson"
NOISE_SEED = "torch.Generator().manual_seed(_seed(seed, step, rank, 3)); torch.normal per parameter " \
             "in named_parameters order"
SAMPLE_SEED = "torch.Generator().manual_seed(_seed(seed, step, rank, 2)); torch.rand(examples) < sample_rate"
EXAMPLE = "a disjoint window of block_size + 1 tokens of the training stream; example k starts at token " \
          "k * (block_size + 1)"


@dataclass(frozen=True)
class DPSpec:
    """A DP-SGD run's parameters, fixed before the first step and recorded in every transcript."""

    target_epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    planned_steps: int
    examples: int  # how many examples the Poisson sampling draws from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DPSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def accountant() -> dict:
    """The accountant's name and version, as a transcript records them."""
    from importlib.metadata import version

    import dp_accounting

    return {"name": "dp-accounting RdpAccountant (Poisson-subsampled Gaussian)",
            "package": "dp-accounting", "version": version("dp-accounting"), "module": dp_accounting.__name__}


def _event(noise_multiplier: float, sample_rate: float, steps: int):
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """The epsilon of `steps` Poisson-sampled Gaussian steps at this delta, by the RDP accountant."""
    if steps == 0:
        return 0.0
    from dp_accounting import rdp

    acc = rdp.RdpAccountant()  # its default orders
    acc.compose(_event(noise_multiplier, sample_rate, steps))
    return float(acc.get_epsilon(delta))


def calibrate(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier (to 1e-4 relative) whose epsilon after `steps` is at most the target."""
    lo, hi = 0.0, 1.0
    while epsilon(hi, sample_rate, steps, delta) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise ConfigInvalid(f"no noise multiplier up to 1e4 reaches epsilon {target_epsilon} at delta {delta} "
                                f"over {steps} steps with sample rate {sample_rate:.4g}; raise epsilon or delta")
    while hi - lo > 1e-4 * hi:
        mid = (lo + hi) / 2
        if epsilon(mid, sample_rate, steps, delta) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def plan(target_epsilon: float, delta: float, max_grad_norm: float, config, train_tokens: int) -> DPSpec:
    """The DPSpec of a run of `config` over a training stream of train_tokens tokens."""
    if not target_epsilon > 0 or not math.isfinite(target_epsilon):
        raise ConfigInvalid(f"--dp-epsilon {target_epsilon} must be a positive number")
    if not 0 < delta < 1:
        raise ConfigInvalid(f"--dp-delta {delta} must lie strictly between 0 and 1")
    if not max_grad_norm > 0 or not math.isfinite(max_grad_norm):
        raise ConfigInvalid(f"--dp-max-grad-norm {max_grad_norm} must be a positive number")
    examples = train_tokens // (config.block_size + 1)
    if examples < 2 * config.batch_size:
        raise ConfigInvalid(f"the training stream holds {examples} examples of {config.block_size + 1} tokens, "
                            f"too few for DP-SGD with batch_size {config.batch_size}; use more data")
    if delta >= 1 / examples:
        raise ConfigInvalid(f"--dp-delta {delta} is not below 1/examples = {1 / examples:.3g}: such a delta "
                            "allows leaking an example outright; choose a smaller delta")
    q = config.batch_size / examples
    sigma = calibrate(target_epsilon, delta, q, config.max_steps)
    return DPSpec(target_epsilon, delta, max_grad_norm, sigma, q, config.max_steps, examples)


def sample(spec: DPSpec, config, generator: torch.Generator) -> list[int]:
    """The step's batch: token offsets of the examples Poisson sampling chose, in example order."""
    chosen = torch.nonzero(torch.rand(spec.examples, generator=generator) < spec.sample_rate).flatten()
    return [int(k) * (config.block_size + 1) for k in chosen]


def params_sha256(model) -> str:
    """sha256 of every parameter's bytes, in named_parameters order: a step's fingerprint in the transcript."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return "0x" + h.hexdigest()


def noisy_clipped_grads(model, spec: DPSpec, x: torch.Tensor, y: torch.Tensor, noise: torch.Generator,
                        *, clip: bool = True, noise_scale: float = 1.0) -> float:
    """Set every parameter's .grad to the DP-SGD estimate from the batch (x, y); the mean loss of the batch.

    clip and noise_scale exist for the tests that show a replay catches a run which skipped
    clipping or added less noise than it claims; training and replay always use the defaults.
    """
    from torch.func import functional_call, grad_and_value, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    if len(x):
        def loss_of(p, b, xi, yi):
            return functional_call(model, (p, b), (xi.unsqueeze(0), yi.unsqueeze(0)))[1]

        with warnings.catch_warnings():  # SDPA has no vmap batching rule yet: torch falls back to a loop
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            grads, losses = vmap(grad_and_value(loss_of), in_dims=(None, None, 0, 0),
                                 randomness="different")(params, buffers, x, y)
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
        factor = (spec.max_grad_norm / (norms + 1e-6)).clamp(max=1.0) if clip else torch.ones_like(norms)
        summed = {k: torch.einsum("i,i...->...", factor, g) for k, g in grads.items()}
        loss = float(losses.mean())
    else:  # Poisson sampling may draw no example: the update is noise alone
        summed = {k: torch.zeros_like(v) for k, v in params.items()}
        loss = float("nan")
    std = spec.noise_multiplier * spec.max_grad_norm * noise_scale
    for name, p in model.named_parameters():
        z = torch.normal(0.0, 1.0, size=p.shape, generator=noise, dtype=p.dtype)
        p.grad = (summed[name] + std * z) / (spec.sample_rate * spec.examples)
    return loss


def transcript_section(spec: DPSpec, last_step: int, digests: list[str]) -> dict:
    """What a DP segment's transcript adds: the parameters, the accountant, the sampling, the seeds, epsilon spent."""
    return {"mechanism": "dp-sgd", **spec.to_dict(),
            "epsilon_spent": epsilon(spec.noise_multiplier, spec.sample_rate, last_step, spec.delta),
            "accountant": accountant(), "sampling": SAMPLING, "example": EXAMPLE,
            "sample_seed": SAMPLE_SEED, "noise_seed": NOISE_SEED, "step_params_sha256": list(digests)}
