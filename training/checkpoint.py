"""Training checkpoints: deterministic safetensors weights, and the optimizer state beside them to resume.

out_dir/ckpt-{step:06d}.safetensors        the weights (float32, the tied embedding stored once)
out_dir/ckpt-{step:06d}.optim.safetensors  AdamW's moments and step counts, and the run's step
out_dir/tokenizer.json                     the tokenizer the weights index into

These names live here only: the trainer writes them, and `saved_checkpoints` reads them back for
`train-and-register --resume` (the registrar, in the torch-free core, never globs for them).

Equal tensors give equal bytes: safetensors orders tensors by dtype and name,
and the one metadata entry (a canonical JSON string) leaves no key order to
vary. The optimizer file is written first and the weights last, both
atomically, so a checkpoint whose weights file exists is complete.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from modelreg._atomic import write_atomic
from modelreg.errors import CheckpointInvalid
from modelreg.records import CheckpointSaved
from modelreg.training.config import TrainConfig
from modelreg.training.model import GPT

WEIGHTS_FORMAT = "modelreg-gpt-weights-v1"
OPTIMIZER_FORMAT = "modelreg-gpt-optimizer-v1"
META_KEY = "modelreg"  # the only metadata key: one key, so the header's bytes cannot reorder
_NAME = re.compile(r"^ckpt-(\d{6,})\.safetensors$")


@dataclass(frozen=True)
class CheckpointMeta:
    """What the weights file says about itself: enough to rebuild the model and trust its tokenizer."""

    step: int
    config: dict
    tokenizer_sha256: str
    dataset_root: str
    format: str = WEIGHTS_FORMAT


def weights_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / f"ckpt-{step:06d}.safetensors"


def optimizer_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / f"ckpt-{step:06d}.optim.safetensors"


def tokenizer_path(out_dir: Path) -> Path:
    return Path(out_dir) / "tokenizer.json"


def _weights_files(out_dir: Path) -> dict[int, Path]:
    """Every weights file in out_dir by step, its optimizer file written or not."""
    found = {}
    for p in Path(out_dir).glob("ckpt-*.safetensors"):
        if m := _NAME.match(p.name):
            found[int(m.group(1))] = p
    return found


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _param_names(model: GPT, optimizer: torch.optim.Optimizer) -> list[tuple[str, torch.Tensor]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [(names[id(p)], p) for group in optimizer.param_groups for p in group["params"]]


def save_checkpoint(out_dir: Path, model: GPT, optimizer: torch.optim.Optimizer, meta: CheckpointMeta) -> Path:
    """Write the optimizer file, then the weights file; return the weights path."""
    optim_tensors = {"step": torch.tensor([meta.step], dtype=torch.int64)}
    for name, p in _param_names(model, optimizer):
        for key, value in optimizer.state[p].items():
            optim_tensors[f"{name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    optim_meta = {META_KEY: _canonical({"format": OPTIMIZER_FORMAT, "step": meta.step})}
    write_atomic(optimizer_path(out_dir, meta.step), st_save(optim_tensors, metadata=optim_meta))

    weights = {k: v.detach().to("cpu", torch.float32, copy=True).contiguous()
               for k, v in model.state_tensors().items()}
    weights_meta = {META_KEY: _canonical({"format": meta.format, "step": meta.step, "config": meta.config,
                                          "tokenizer_sha256": meta.tokenizer_sha256,
                                          "dataset_root": meta.dataset_root})}
    path = weights_path(out_dir, meta.step)
    write_atomic(path, st_save(weights, metadata=weights_meta))
    return path


def _read(path: Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointInvalid(f"checkpoint {path} does not exist") from None
    try:
        tensors = st_load(data)
        # safetensors.torch.load drops the metadata; the header is 8 bytes of length, then JSON.
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError) as e:
        raise CheckpointInvalid(f"{path} is not a modelreg training checkpoint ({e})") from None
    if meta.get("format") != expected_format:
        raise CheckpointInvalid(f"{path} has format {meta.get('format')!r}, expected {expected_format!r}")
    return tensors, meta


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """The stored tensors and the metadata of a weights file."""
    tensors, meta = _read(path, WEIGHTS_FORMAT)
    return tensors, CheckpointMeta(meta["step"], meta["config"], meta["tokenizer_sha256"], meta["dataset_root"])


def load_model(path: Path, device: str = "cpu") -> tuple[GPT, CheckpointMeta]:
    """Rebuild the GPT a weights file holds, in eval mode."""
    tensors, meta = read_weights(path)
    model = GPT(TrainConfig.from_dict(meta.config))
    model.load_state_tensors(tensors)
    return model.to(device).eval(), meta


def load_optimizer(path: Path, model: GPT, optimizer: torch.optim.Optimizer) -> int:
    """Restore AdamW's state from an optimizer file into a freshly built optimizer; return its step."""
    tensors, meta = _read(path, OPTIMIZER_FORMAT)
    sd = optimizer.state_dict()  # param_groups as built from the config; only the state comes from disk
    state = {}
    for index, (name, _) in enumerate(_param_names(model, optimizer)):
        keys = {k[len(name) + 1:]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == name}
        if not keys:
            raise CheckpointInvalid(f"optimizer file {path} has no state for parameter {name}; "
                                    "it belongs to another model")
        state[index] = keys
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return int(tensors["step"].item())


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The weights file of the newest complete checkpoint in out_dir, or None."""
    files = _weights_files(out_dir)
    complete = [step for step in files if optimizer_path(out_dir, step).exists()]
    return files[max(complete)] if complete else None


def saved_checkpoints(out_dir: Path) -> list[CheckpointSaved]:
    """Every checkpoint out_dir holds, in step order, as much of its `CheckpointSaved` as the file
    names tell: the step, the weights and the tokenizer. What only the trainer's event carried
    (metrics, config, transcript) is not on disk; the optimizer state is left out too, as the
    registrar always committed a checkpoint recovered from disk (`Registrar.recover`).
    """
    return [CheckpointSaved(path, step, tokenizer_path=tokenizer_path(out_dir))
            for step, path in sorted(_weights_files(out_dir).items())]
