"""Derivation transforms: deterministic CPU functions from a verified source model to a derived one.

Each transform is one module of this package defining `TRANSFORM`, a `Transform`; adding a module
adds a transform (`known()` finds it by its name). A transform reads the source's tensors (and its
training config, for the project's GPT) and writes the derived model into a directory:
`model.safetensors`, and any other file (the ONNX graph) beside it. Equal inputs give equal bytes,
here or in another process, so `audit replay` re-derives a version and compares its roots.

`run(job)` is what the library's derive and replay are handed (the library never imports
training): it applies the transform and, when asked, measures the derived model's fidelity (see
`fidelity`).
"""

import contextlib
import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from modelreg._atomic import write_atomic
from modelreg.errors import CheckpointInvalid, DerivationUnavailable, TransformParamsInvalid, TransformUnknown
from modelreg.service.derive import DeriveJob, DeriveOutcome
from modelreg.training.config import TrainConfig

WEIGHTS_FILE = "model.safetensors"
Logits = Callable[[torch.Tensor], torch.Tensor]  # (B, T) token ids -> (B, T, vocab) float32 logits


@dataclass(frozen=True)
class Source:
    """The verified source: its tensors by name, and its GPT config when it is the project's GPT."""

    tensors: dict[str, torch.Tensor]
    config: TrainConfig | None


@dataclass(frozen=True)
class Transform:
    """A named transform: its parameters (name -> allowed values, the first the default; an empty
    tuple: required, any value), how it writes the derived model, and how the derived model runs."""

    name: str
    apply: Callable[[Source, dict, Path], None]  # writes into the directory; input params hold local paths
    logits: Callable[[Path, TrainConfig], Logits]  # the derived model in out_dir, as a function
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    summary: str = ""
    needs_gpt: bool = False
    inputs: tuple[str, ...] = ()  # parameters whose value is the CID of a second input (a LoRA adapter)


def known() -> dict[str, Transform]:
    """Every transform of this package, by name."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            t = importlib.import_module(f"{__name__}.{info.name}").TRANSFORM
            found[t.name] = t
    return dict(sorted(found.items()))


def get(name: str) -> Transform:
    transforms = known()
    if name not in transforms:
        raise TransformUnknown(f"no transform named {name!r}; known: {', '.join(transforms)}")
    return transforms[name]


def normalize(name: str, params: dict[str, str]) -> dict[str, str]:
    """The transform's parameters with defaults filled in; TransformParamsInvalid names a bad one."""
    spec = get(name).params
    unknown = sorted(set(params) - set(spec))
    if unknown:
        takes = ", ".join(f"{k} ({'|'.join(v) or 'any'})" for k, v in spec.items()) or "no parameters"
        raise TransformParamsInvalid(f"transform {name!r} has no parameter {unknown[0]!r}; it takes {takes}")
    out = {}
    for key, allowed in spec.items():
        value = params.get(key, allowed[0] if allowed else None)
        if value is None and not allowed:
            raise TransformParamsInvalid(f"transform {name!r} needs --param {key}=VALUE")
        if allowed and value not in allowed:
            raise TransformParamsInvalid(f"transform {name!r} needs --param {key}=VALUE with VALUE one of "
                                         f"{', '.join(allowed)}; got {value!r}")
        out[key] = value
    return out


def inputs_of(name: str) -> tuple[str, ...]:
    """The parameters of transform `name` that name a second input by CID, fetched and checked by the caller."""
    return get(name).inputs


def run(job: DeriveJob) -> DeriveOutcome:
    """Apply the job's transform to its verified source; measure fidelity when the job asks."""
    transform = get(job.transform)
    params = normalize(job.transform, job.params)
    source = read_source(Path(job.source_path), job.config)
    if transform.needs_gpt and source.config is None:
        raise DerivationUnavailable(f"transform {transform.name!r} needs the project's GPT: the source's manifest "
                                    "records no training config")
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every transform is elementwise or a copy; one thread, no doubt about sums
    try:
        transform.apply(source, {**params, **job.inputs}, out)
    finally:
        torch.set_num_threads(threads)
    measured, t0 = None, time.perf_counter()
    if job.measure:
        from modelreg.training.transforms._fidelity import fidelity

        measured = fidelity(source, transform.logits(out, source.config) if source.config else None, job)
    return DeriveOutcome(path=str(out), fidelity=measured, tools=tools(), fidelity_s=time.perf_counter() - t0)


def tools() -> dict[str, str]:
    """The versions of the code a derivation runs."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("modelreg", "torch", "onnx", "onnxruntime"):
        with contextlib.suppress(PackageNotFoundError):  # onnx is an extra: absent, it is not recorded
            found[name] = version(name)
    return found


# -- helpers the transform modules share ---------------------------------------------------------------
def read_source(path: Path, config: dict | None) -> Source:
    """The tensors of a safetensors file, or of every *.safetensors shard of a directory."""
    files = sorted(path.rglob("*.safetensors")) if path.is_dir() else [path]
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(st_load(f.read_bytes()))
        except Exception as e:  # safetensors raises its own error types and ValueError
            raise CheckpointInvalid(f"{f} cannot be read as safetensors: {e}") from None
    return Source(tensors, TrainConfig.from_dict(config) if config else None)


def write_weights(out: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """`model.safetensors` with no metadata: equal tensors, equal bytes."""
    path = out / WEIGHTS_FILE
    write_atomic(path, st_save({k: v.contiguous() for k, v in tensors.items()}))
    return path


def read_weights(out: Path) -> dict[str, torch.Tensor]:
    return st_load((out / WEIGHTS_FILE).read_bytes())


def gpt_model(tensors: dict[str, torch.Tensor], config: TrainConfig):
    """The project's GPT holding `tensors` (as float32), in eval mode."""
    from modelreg.training.model import GPT

    model = GPT(config)
    model.load_state_tensors({k: v.to(torch.float32) for k, v in tensors.items()})
    return model.eval()


def gpt_logits(tensors: dict[str, torch.Tensor], config: TrainConfig) -> Logits:
    """`gpt_model` as a logits function."""
    model = gpt_model(tensors, config)

    @torch.no_grad()
    def logits(idx: torch.Tensor) -> torch.Tensor:
        return model(idx)[0].float()

    return logits
