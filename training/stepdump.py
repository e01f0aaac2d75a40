"""Dump every intermediate tensor of the first training steps, and find the first that differs between two dumps.

This is how `docs/replay.md` finds why CPU training is not bit-identical on another CPU:
run `dump` on each machine (or under `qemu-x86_64 -cpu MODEL`, which gives MKL and oneDNN another
CPUID), then `compare` the two files. The dump holds, in the order they were computed: the seeded
initial parameters, the token batch, every module's forward output, the loss, every gradient, the
optimizer state and the parameters after each step.

    python -m modelreg.training.stepdump dump OUT.safetensors [--steps 1] [--data DIR] [--bytes 60000]
    python -m modelreg.training.stepdump compare A.safetensors B.safetensors

The process pins the numerics first (training.numerics.pin), as training does; set the variables
yourself to try another profile (e.g. MKL_CBWR=AVX,STRICT).
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path


def _cpu() -> dict:
    info = {"machine": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "model name", "cpu family", "model") and key not in info:
            info[key] = value.strip()
        if key == "flags" and "flags" not in info:
            flags = value.split()
            info["flags"] = " ".join(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    return info


def dump(out: Path, steps: int, data_dir: Path, limit: int) -> dict:
    from modelreg.training import numerics

    numerics.pin()
    import tempfile
    from contextlib import nullcontext
    from dataclasses import replace

    import torch
    from safetensors.torch import save_file

    from modelreg.training.config import preset
    from modelreg.training.data import seal_and_load
    from modelreg.training.distributed import DistEnv
    from modelreg.training.model import GPT
    from modelreg.training.tokenizer import load_tokenizer, train_tokenizer
    from modelreg.training.trainer import tokenize, train_step

    tensors: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def keep(name: str, t: torch.Tensor) -> None:
        order.append(name)
        tensors[name] = t.detach().clone().contiguous()

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "data"
        small.mkdir()
        for f in sorted(data_dir.glob("*.txt"))[:2]:
            (small / f.name).write_bytes(f.read_bytes()[:limit])
        dataset = seal_and_load(small)
        config = replace(preset("tiny"), max_steps=max(steps, 1))
        train_tokenizer([f.text for f in dataset.files], config.vocab_size, Path(tmp) / "tok.json")
        tokenizer, _ = load_tokenizer(Path(tmp) / "tok.json")
        train_data, _, _ = tokenize(dataset, tokenizer, config)
    keep("data/train_tokens", train_data)
    torch.manual_seed(config.seed)
    model = GPT(config)
    for name, p in model.named_parameters():
        keep(f"init/{name}", p)
    optimizer = model.configure_optimizer(config, "cpu", ieee=os.environ.get("STEPDUMP_TORCH_ADAMW") != "1")
    step_no = [0]

    def hook(module, args, output):
        first = output[0] if isinstance(output, tuple) else output
        if isinstance(first, torch.Tensor):
            keep(f"step{step_no[0]}/fwd/{len(order):04d}/{names[module] or 'model'}", first)

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    real_step = optimizer.step

    def step_and_keep(*a, **k):  # after backward, before the update: the gradients
        for name, p in model.named_parameters():
            if p.grad is not None:
                keep(f"step{step_no[0]}/grad/{name}", p.grad)
        return real_step(*a, **k)

    optimizer.step = step_and_keep
    env = DistEnv(rank=0, local_rank=0, world_size=1, device="cpu")
    for step in range(1, steps + 1):
        step_no[0] = step
        loss, ix = train_step(model, optimizer, config, train_data, step, env, nullcontext())
        keep(f"step{step}/loss", torch.tensor([loss]))
        keep(f"step{step}/batch", torch.tensor(ix))
        for name, p in model.named_parameters():
            keep(f"step{step}/param/{name}", p)
            for key, value in optimizer.state[p].items():
                if isinstance(value, torch.Tensor) and value.dim():
                    keep(f"step{step}/opt/{name}/{key}", value)
    for h in handles:
        h.remove()
    from modelreg.training.numerics import current

    meta = {"order": order, "cpu": _cpu(), "numerics": current(), "torch": torch.__version__}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"stepdump": json.dumps(meta)})
    return meta


def compare(a: Path, b: Path) -> dict:
    """The first tensor (in computation order) whose bytes differ, with its distance; None when all agree."""
    import torch
    from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        meta_a = json.loads(fa.metadata()["stepdump"])
        meta_b = json.loads(fb.metadata()["stepdump"])
        differing, names_b = [], set(fb.keys())
        for name in meta_a["order"]:
            if name not in names_b:
                differing.append({"name": name, "missing": True})
                continue
            x, y = fa.get_tensor(name), fb.get_tensor(name)
            if x.shape != y.shape or not torch.equal(x.view(-1).view(torch.uint8) if x.is_floating_point() else x,
                                                     y.view(-1).view(torch.uint8) if y.is_floating_point() else y):
                d = (x.double() - y.double()).abs().max().item() if x.shape == y.shape else None
                differing.append({"name": name, "max_abs": d})
    return {"a": {"cpu": meta_a["cpu"], "numerics": meta_a["numerics"]},
            "b": {"cpu": meta_b["cpu"], "numerics": meta_b["numerics"]},
            "tensors": len(meta_a["order"]), "differing": len(differing),
            "first": differing[0] if differing else None, "first_10": differing[:10]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--steps", type=int, default=1)
    from modelreg.training.data import CORPUS_DIR

    d.add_argument("--data", type=Path, default=CORPUS_DIR)
    d.add_argument("--bytes", type=int, default=60_000, help="bytes of each of the first two files")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        meta = dump(args.out, args.steps, args.data, args.bytes)
        print(json.dumps({"tensors": len(meta["order"]), "cpu": meta["cpu"], "numerics": meta["numerics"]}))
        return 0
    result = compare(args.a, args.b)
    print(json.dumps(result, indent=1))
    return 0 if result["first"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
