"""The training loop, after karpathy/nanoGPT's train.py: verified data in, checkpoints and a hook call out.

Randomness is a function of (seed, step, rank): the batch indices and the
dropout masks of step s are drawn from generators seeded from those three
numbers. So a run resumed from step k draws exactly what the uninterrupted run
drew, with no RNG state to save, and on the CPU two runs of the same config,
data and seed write bit-identical checkpoints.
"""

import bisect
import contextlib
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modelreg._atomic import write_atomic
from modelreg.errors import ConfigInvalid, DatasetInvalid, DatasetTampered, InputInvalid
from modelreg.formats.manifest import canonical_json
from modelreg.formats.transcript import BatchLeaf, batches_document, config_sha256, tokens_sha256
from modelreg.records import CheckpointSaved
from modelreg.training import checkpoint as ckpt
from modelreg.training import distributed, numerics
from modelreg.training import dp as dp_sgd
from modelreg.training.config import TrainConfig
from modelreg.training.data import VerifiedDataset, load_dataset, seal_directory
from modelreg.training.model import GPT
from modelreg.training.tokenizer import EOT, TokenizerArtifact, load_tokenizer, train_tokenizer


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    final_step: int
    checkpoints: tuple[Path, ...]  # written by this call (rank 0; empty elsewhere)
    tokenizer: TokenizerArtifact
    dataset_root: str
    evals: tuple[dict, ...]  # {"step", "train_loss", "val_loss", "val_perplexity"}, step 0 first on a fresh run
    step_losses: tuple[float, ...]  # the training loss of every step this call ran
    tokens_seen: int
    elapsed_s: float = field(compare=False)


def get_lr(config: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step `step` (1-based): linear warmup, then cosine decay to min_lr."""
    it = step - 1
    if it < config.warmup_steps:
        return config.learning_rate * (it + 1) / (config.warmup_steps + 1)
    decay_ratio = (it - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, decay_ratio)))  # 1 -> 0
    return config.min_lr + coeff * (config.learning_rate - config.min_lr)


def _seed(*parts: int) -> int:
    # A fixed mixing of (seed, step, rank): distinct steps and ranks get unrelated streams.
    h = 0
    for x in parts:
        h = (h * 1_000_003 + x) % (2**63 - 1)
    return h


def batch_positions(data: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> list[int]:
    """Where the B windows of a batch start in the token stream."""
    return torch.randint(len(data) - config.block_size - 1, (config.batch_size,), generator=generator).tolist()


def get_batch(data: torch.Tensor, config: TrainConfig, generator: torch.Generator, device: str,
              ix: list[int] | None = None):
    """B random windows of T+1 tokens: inputs and the same shifted by one as targets."""
    ix = batch_positions(data, config, generator) if ix is None else ix
    if not ix:  # a DP step's Poisson sampling may draw no example
        empty = torch.empty((0, config.block_size), dtype=data.dtype)
        return empty.to(device), empty.clone().to(device)
    x = torch.stack([data[i:i + config.block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1:i + 1 + config.block_size] for i in ix])  # (B, T)
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def batch_leaf(step: int, ix: list[int], data: torch.Tensor, starts: list[int], config: TrainConfig) -> BatchLeaf:
    """The batch commitment of a step: each window's file and offset in it, and the sha256 of its tokens."""
    files = [bisect.bisect_right(starts, i) - 1 for i in ix]
    windows = torch.stack([data[i:i + config.block_size + 1] for i in ix]) if ix else \
        torch.empty((0, config.block_size + 1), dtype=torch.long)  # (B, T+1)
    return BatchLeaf(step, tuple(files), tuple(i - starts[f] for i, f in zip(ix, files)),
                     tokens_sha256(windows.numpy().astype("<i8").tobytes()))


def train_step(model, optimizer, config: TrainConfig, train_data: torch.Tensor, step: int, env, autocast,
               dp: "dp_sgd.DPSpec | None" = None):
    """One optimizer step, its randomness a function of (seed, step, rank): (loss, sample positions).

    With dp, a DP-SGD step (training/dp.py): Poisson-sampled examples, per-sample clipping and
    Gaussian noise, each drawn from generators seeded with (seed, step, rank) as well.
    """
    lr = get_lr(config, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(_seed(config.seed, step, env.rank))  # dropout masks of this step
    g = torch.Generator().manual_seed(_seed(config.seed, step, env.rank, 1))
    if dp is not None:
        ix = dp_sgd.sample(dp, config, torch.Generator().manual_seed(_seed(config.seed, step, env.rank, 2)))
        x, y = get_batch(train_data, config, g, env.device, ix)
        noise = torch.Generator().manual_seed(_seed(config.seed, step, env.rank, 3))
        loss = dp_sgd.noisy_clipped_grads(model, dp, x, y, noise)  # per-sample clipping replaces grad_clip
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss, ix
    ix = batch_positions(train_data, config, g)
    x, y = get_batch(train_data, config, g, env.device, ix)
    with autocast:
        _, loss = model(x, y)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item(), ix


@torch.no_grad()
def estimate_loss(model: GPT, splits: dict[str, torch.Tensor], config: TrainConfig, device: str, autocast):
    """Mean loss over eval_iters fixed batches per split: the same batches at every evaluation."""
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(config.seed)
        losses = torch.zeros(config.eval_iters)
        for k in range(config.eval_iters):
            x, y = get_batch(data, config, g, device)
            with autocast:
                _, loss = model(x, y)
            losses[k] = loss.item()
        out[name] = losses.mean().item()
    model.train()
    return out


def tokenize(dataset: VerifiedDataset, tokenizer, config: TrainConfig, cache: Path | None = None):
    """The train and validation token streams, and where each file (in manifest order) starts.

    cache, when given, is a file for this (dataset root, tokenizer) pair: read when it holds the
    stream (its sha256 checked), written otherwise. A replay of several versions tokenizes once.
    """
    found = _cached_tokens(cache) if cache is not None else None
    if found is not None:
        data, starts = found
    else:
        data, starts = _tokenize(dataset, tokenizer)
        if cache is not None:
            with contextlib.suppress(OSError):  # a cache that cannot be written costs time, never the run
                _store_tokens(cache, data, starts)
    n_val = int(len(data) * config.val_fraction)
    train, val = data[:len(data) - n_val], data[len(data) - n_val:]
    if min(len(train), len(val)) <= config.block_size + 1:
        raise DatasetInvalid(f"the dataset gives {len(data)} tokens, too few for block_size "
                             f"{config.block_size} with val_fraction {config.val_fraction}; "
                             "use more text or a smaller block_size")
    return train, val, starts


def _tokenize(dataset: VerifiedDataset, tokenizer) -> tuple[torch.Tensor, list[int]]:
    eot = tokenizer.token_to_id(EOT)
    ids: list[int] = []
    starts: list[int] = []
    for encoding in tokenizer.encode_batch([f.text for f in dataset.files]):
        starts.append(len(ids))
        ids.extend(encoding.ids)
        ids.append(eot)
    return torch.tensor(ids, dtype=torch.long), starts


def _cached_tokens(path: Path) -> tuple[torch.Tensor, list[int]] | None:
    """The stream a token cache holds, or None when it is absent, unreadable or not what it says."""
    import hashlib

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            digest = (f.metadata() or {}).get("sha256")
            data, starts = f.get_tensor("ids"), f.get_tensor("starts").tolist()
    except (OSError, SafetensorError, KeyError, ValueError):
        return None
    if digest != hashlib.sha256(data.numpy().tobytes()).hexdigest():
        return None
    return data, starts


def _store_tokens(path: Path, data: torch.Tensor, starts: list[int]) -> None:
    import hashlib

    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    body = save({"ids": data, "starts": torch.tensor(starts, dtype=torch.long)},
                metadata={"sha256": hashlib.sha256(data.numpy().tobytes()).hexdigest()})
    write_atomic(path, body)


def token_cache(cache_dir: Path, dataset_root: str, tokenizer_sha256: str) -> Path:
    """Where the token stream of this dataset under this tokenizer is cached."""
    return Path(cache_dir) / f"{dataset_root.lower()}-{tokenizer_sha256.lower()}.safetensors"


def _prepare_out_dir(out_dir: Path, config: TrainConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from, after refusing to mix two runs in one directory."""
    latest = ckpt.latest_checkpoint(out_dir)
    if latest is None:
        return None
    if not resume:
        raise InputInvalid(f"{out_dir} already holds checkpoints (newest {latest.name}); "
                           "resume that run, or train into an empty directory")
    _, meta = ckpt.read_weights(latest)
    if meta.config != config.to_dict():
        changed = sorted(k for k, v in config.to_dict().items() if meta.config.get(k) != v)
        raise ConfigInvalid(f"cannot resume {latest}: the config differs in {changed}; "
                            "resume with the config the run started with")
    return latest


def _tokenizer_for(env, dataset, config, out_dir: Path, resume_from: Path | None):
    path = ckpt.tokenizer_path(out_dir)
    if resume_from is not None:
        return load_tokenizer(path, ckpt.read_weights(resume_from)[1].tokenizer_sha256)
    if env.is_main:
        train_tokenizer([f.text for f in dataset.files], config.vocab_size, path)
    distributed.barrier(env)  # the other ranks read the file rank 0 wrote
    return load_tokenizer(path)


def train(
    config: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    *,
    dataset_manifest: dict | str | Path | None = None,
    dataset_root: str | None = None,
    on_checkpoint: Callable[[CheckpointSaved], None] | None = None,
    resume: bool = False,
    device: str | None = None,
    before_first_step: Callable[[], None] | None = None,
    dataset: VerifiedDataset | None = None,
    dp: dict | None = None,
    token_cache_dir: Path | None = None,
) -> TrainResult:
    """Train config on the verified dataset in data_dir, writing checkpoints to out_dir.

    dataset_manifest is the dataset's `modelreg-dataset-manifest-v1`, a dict or a JSON
    file; without it the directory is sealed now and every file in it is used.
    dataset_root, when given, must be the manifest's root. on_checkpoint is called on
    rank 0 after every checkpoint, once both its files are on disk, with its `CheckpointSaved`
    (`modelreg.records`), in the training thread: it must hand slow work (the
    network) elsewhere and return. An exception from it stops training, leaving the
    checkpoints written so far resumable with resume=True. before_first_step is called on
    rank 0 once the data is verified and tokenized into enough tokens for a batch and the model
    is built, before the first step: what must not happen for bad data (registering it) waits
    for it, and an exception from it stops training before any step. dataset, when given, is
    the data already read and checked (`data.seal_and_load`): it is not read again. dp, when
    given ({"epsilon", "delta", "max_grad_norm"}), trains with DP-SGD (training/dp.py): the
    noise multiplier is calibrated for that target over config.max_steps, and every
    transcript records the parameters, the accountant and the epsilon spent.
    """
    t0 = time.time()
    env = distributed.setup(device)
    try:
        result = _train(config, Path(data_dir), Path(out_dir), dataset_manifest, dataset_root,
                        on_checkpoint, resume, env, t0, before_first_step, dataset, dp, token_cache_dir)
    except BaseException:
        distributed.teardown(env, together=False)
        raise
    distributed.teardown(env)  # every rank at once: none leaves while rank 0 still writes
    return result


def _train(config, data_dir, out_dir, manifest, expected_root, on_checkpoint, resume, env, t0,
           before_first_step=None, dataset=None, dp=None, token_cache_dir=None):
    if dataset is None:
        manifest = manifest if manifest is not None else seal_directory(data_dir)
        dataset = load_dataset(data_dir, manifest, expected_root)  # raises before any step on a bad file
    elif expected_root is not None and dataset.root != expected_root.lower():
        raise DatasetTampered(f"the dataset given has root {dataset.root}, training expects {expected_root}")
    out_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _prepare_out_dir(out_dir, config, resume)
    tokenizer, tok_artifact = _tokenizer_for(env, dataset, config, out_dir, resume_from)
    cache = token_cache(token_cache_dir, dataset.root, tok_artifact.sha256) if token_cache_dir else None
    train_data, val_data, starts = tokenize(dataset, tokenizer, config, cache)
    spec = None
    if dp is not None:
        if env.world_size > 1:
            raise ConfigInvalid("DP-SGD training runs in one process: its transcript must hold every sample "
                                "of a step; drop torchrun or the --dp-* options")
        spec = dp_sgd.plan(dp["epsilon"], dp["delta"], dp["max_grad_norm"], config, len(train_data))

    torch.manual_seed(config.seed)
    model = GPT(config).to(env.device)
    optimizer = model.configure_optimizer(config, env.device_type, ieee=True)  # portable on the CPU
    step = 0
    if resume_from is not None:
        tensors, meta = ckpt.read_weights(resume_from)
        model.load_state_tensors({k: v.to(env.device) for k, v in tensors.items()})
        step = ckpt.load_optimizer(ckpt.optimizer_path(out_dir, meta.step), model, optimizer)
    raw_model = model
    if env.world_size > 1:
        model = distributed.wrap(model, env)

    cuda = env.device_type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    environment = {"torch": torch.__version__, "device": env.device, "world_size": env.world_size,
                   "dtype": "bfloat16-autocast" if cuda else "float32"}
    tokens_per_step = config.batch_size * config.block_size * env.world_size
    splits = {"train": train_data, "val": val_data}
    if before_first_step is not None and env.is_main:
        before_first_step()
    evals, step_losses, written = [], [], []
    if step == 0 and env.is_main:
        losses = estimate_loss(raw_model, splits, config, env.device, autocast)
        evals.append(_eval_record(0, losses))

    # A transcript needs every sample of a step: under DDP rank 0 gathers every rank's and records them all.
    segment = Segment(config, data_dir, dataset, out_dir, step, environment, spec) if env.is_main else None
    model.train()
    while step < config.max_steps:
        step += 1
        loss, ix = train_step(model, optimizer, config, train_data, step, env, autocast,
                              **({"dp": spec} if spec is not None else {}))  # a plain step keeps its signature
        step_losses.append(loss)
        if env.world_size > 1:
            ix = distributed.all_positions(env, ix)  # every rank's samples, rank 0's first
        if segment is not None:
            segment.leaves.append(batch_leaf(step, ix, train_data, starts, config))
            if spec is not None:
                segment.digests.append(dp_sgd.params_sha256(raw_model))

        if env.is_main and (step % config.eval_interval == 0 or step == config.max_steps):
            record = _eval_record(step, estimate_loss(raw_model, splits, config, env.device, autocast))
            evals.append(record)
            transcript = segment.close(step) if segment is not None else None  # before the weights file
            meta = ckpt.CheckpointMeta(step, config.to_dict(), tok_artifact.sha256, dataset.root)
            path = ckpt.save_checkpoint(out_dir, raw_model, optimizer, meta)
            written.append(path)
            if on_checkpoint is not None:
                metrics = {"train_loss": record["train_loss"], "val_loss": record["val_loss"],
                           "val_perplexity": record["val_perplexity"], "lr": get_lr(config, step),
                           "tokens_seen": step * tokens_per_step, "elapsed_s": time.time() - t0}
                if transcript is not None and "dp" in transcript:
                    metrics["dp_epsilon"] = transcript["dp"]["epsilon_spent"]
                on_checkpoint(CheckpointSaved(path, step, metrics, config.to_dict(), dict(environment),
                                              optimizer_path=ckpt.optimizer_path(out_dir, step),
                                              tokenizer_path=tok_artifact.path,
                                              tokenizer_sha256=tok_artifact.sha256, dataset_root=dataset.root,
                                              transcript=transcript))
    return TrainResult(out_dir, step, tuple(written), tok_artifact, dataset.root, tuple(evals),
                       tuple(step_losses), step * tokens_per_step, time.time() - t0)


class Segment:
    """The steps since the last checkpoint (or the start), recorded for the next checkpoint's transcript."""

    def __init__(self, config: TrainConfig, data_dir: Path, dataset: VerifiedDataset, out_dir: Path,
                 parent_step: int, environment: dict, dp: "dp_sgd.DPSpec | None" = None):
        self.config, self.out_dir, self.parent_step, self.dp = config, out_dir, parent_step, dp
        self.world_size = environment["world_size"]  # a step's leaf holds every rank's samples, in rank order
        self.digests: list[str] = []  # DP runs: the parameters' sha256 after each step
        self.files = {f.path: str(data_dir / f.path) for f in dataset.files}
        self.numerics = {**numerics.current(), "device": environment["device"], "dtype": environment["dtype"]}
        if environment["device"] == "cpu":
            from modelreg.training.optim import NAME

            self.numerics["optimizer"] = NAME  # replay builds the same optimizer (absent: torch's AdamW)
        self.leaves: list[BatchLeaf] = []

    def close(self, step: int) -> dict:
        """Write the segment's batches document beside the checkpoint; the transcript the hook receives.

        Paths, not roots: the registrar seals and pins them, off the training thread.
        """
        batches_path = self.out_dir / f"ckpt-{step:06d}.batches.json"
        write_atomic(batches_path, canonical_json(batches_document(self.leaves)))
        parent = None
        if self.parent_step:
            parent = {"step": self.parent_step, "weights_path": str(ckpt.weights_path(self.out_dir, self.parent_step)),
                      "optimizer_path": str(ckpt.optimizer_path(self.out_dir, self.parent_step))}
        transcript = {"first_step": self.parent_step + 1, "last_step": step, "seed": self.config.seed,
                      "config_sha256": config_sha256(self.config.to_dict()), "numerics": dict(self.numerics),
                      "batches_path": str(batches_path), "parent": parent, "dataset_files": dict(self.files)}
        if self.dp is not None:
            transcript["dp"] = dp_sgd.transcript_section(self.dp, step, self.digests)
        if self.world_size > 1:
            transcript["world_size"] = self.world_size
        self.parent_step, self.leaves, self.digests = step, [], []
        return transcript


def _eval_record(step: int, losses: dict) -> dict:
    return {"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
            "val_perplexity": math.exp(losses["val"])}
