"""Training benchmark: tokens per second of a full run of a preset, against a bare training loop, and its loss curve.

    python bench/train.py [--preset tiny] [--device cpu|cuda] [--png train_loss.png] [--json]

The run is `training.train` end to end on the committed corpus: sealing and
verifying the dataset, training the tokenizer, every evaluation and
checkpoint. The baseline, measured in the same process, is the bare
forward/backward/AdamW step of the same model on the same batch shape, with
no data pipeline, evaluation or checkpoints; the ratio says what the rest
costs. On CUDA the peak GPU memory of both is reported too.
"""

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from modelreg.training.config import preset
from modelreg.training.data import CORPUS_DIR
from modelreg.training.model import GPT
from modelreg.training.trainer import train


def bare_loop(config, device: str, steps: int) -> float:
    """Tokens per second of forward + backward + optimizer step alone, after a short warmup."""
    torch.manual_seed(config.seed)
    model = GPT(config).to(device)
    optimizer = model.configure_optimizer(config, device.split(":")[0])
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    x = torch.randint(config.vocab_size, (config.batch_size, config.block_size), device=device)
    for i in range(steps + 5):  # the first 5 steps warm up allocators and kernels, untimed
        if i == 5:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast:
            _, loss = model(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return steps * config.batch_size * config.block_size / (time.perf_counter() - t0)


def plot(result, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(1, len(result.step_losses) + 1), result.step_losses, lw=0.6, alpha=0.5, label="train (step)")
    ax.plot([e["step"] for e in result.evals], [e["train_loss"] for e in result.evals], "o-", label="train (eval)")
    ax.plot([e["step"] for e in result.evals], [e["val_loss"] for e in result.evals], "s-", label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy loss (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--png", type=Path, default=Path("train_loss.png"), help="where to write the loss curve")
    ap.add_argument("--baseline-steps", type=int, default=50)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args(argv)
    config = preset(args.preset)
    cuda = args.device.startswith("cuda")

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    bare_tps = bare_loop(config, args.device, args.baseline_steps)
    bare_peak = torch.cuda.max_memory_allocated() if cuda else None

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        result = train(config, CORPUS_DIR, Path(out), device=args.device)
    run_peak = torch.cuda.max_memory_allocated() if cuda else None
    run_tps = result.tokens_seen / result.elapsed_s
    plot(result, args.png, f"{args.preset} preset on {args.device}: {result.final_step} steps")

    first, last = result.evals[0], result.evals[-1]
    report = {
        "bench": "train", "preset": args.preset, "device": args.device, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "steps": result.final_step, "tokens": result.tokens_seen,
        "checkpoints": len(result.checkpoints), "run_seconds": round(result.elapsed_s, 2),
        "run_tokens_per_s": round(run_tps, 1), "bare_loop_tokens_per_s": round(bare_tps, 1),
        "run_over_bare": round(run_tps / bare_tps, 3),
        "val_loss_first": round(first["val_loss"], 4), "val_loss_last": round(last["val_loss"], 4),
        "val_perplexity_last": round(last["val_perplexity"], 2), "loss_curve_png": str(args.png),
        "peak_memory_bytes_run": run_peak, "peak_memory_bytes_bare": bare_peak,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"{args.preset} on {args.device}: {result.final_step} steps, {len(result.checkpoints)} checkpoints "
              f"in {result.elapsed_s:.1f} s")
        print(f"  full run   {run_tps:10.0f} tokens/s")
        print(f"  bare loop  {bare_tps:10.0f} tokens/s   (run / bare = {run_tps / bare_tps:.3f})")
        print(f"  val loss   {first['val_loss']:.3f} -> {last['val_loss']:.3f}   "
              f"perplexity {last['val_perplexity']:.1f}")
        if cuda:
            print(f"  peak GPU memory: run {run_peak / 2**20:.0f} MiB, bare loop {bare_peak / 2**20:.0f} MiB")
        print(f"  loss curve: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
