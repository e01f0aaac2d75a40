"""Derivation benchmark: derive+commit against the transform alone, and the replay against the derivation.

    python bench/derive.py [--preset small] [--repeat 3] [--json]

For each transform (cast fp16, cast bf16, int8-weight-only, onnx, and merge-lora of a rank-8
adapter of every attention and MLP input projection, pinned beforehand) on a seeded GPT of the preset
(its initialisation: the cost depends on the shapes, not on training), committed as a version of
a model on the embedded devnet:

- transform alone: `modelreg.training.transforms.run` on the local weights file (and adapter), no fidelity;
- derive+commit: `Registry.derive`: fetch the source by CID and check it against the chain, run
  the transform, measure fidelity (probe batch, both models), seal, pin, commit; shown whole and
  without the fidelity measurement (running two models costs more than a cast);
- replay: `audit replay` of the derived version: fetch and check the source, re-run the transform,
  seal and compare.

Each figure is the median of --repeat runs in this process; the ratios are against the baseline
measured in the same run. Aims: derive+commit <= 1.3x the transform, replay <= 1.2x the derivation.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import modelreg
from modelreg.devnet import manager
from modelreg.service.derive import DeriveJob
from modelreg.service.replay import replay
from modelreg.training import transforms
from modelreg.training.config import preset
from modelreg.training.model import GPT

CASES = [("cast", {"dtype": "fp16"}), ("cast", {"dtype": "bf16"}), ("int8-weight-only", {}), ("onnx", {})]


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        home, tmp = Path(tmp) / "home", Path(tmp)
        torch.manual_seed(config.seed)
        source = tmp / "source.safetensors"
        save_file({k: v.contiguous() for k, v in GPT(config).state_tensors().items()}, source)
        registry = modelreg.connect(home)
        try:
            registry.commit(source, "src", config=config.to_dict())
            lora = {"adapter": registry.ipfs.add(_adapter(config, tmp / "adapter.safetensors")), "scale": "2"}
            rows = [_case(registry, source, config, name, params, args.repeat, tmp)
                    for name, params in [*CASES, ("merge-lora", lora)]]
        finally:
            manager.down(home)
    result = {"preset": args.preset, "params": sum(p.numel() for p in GPT(config).parameters()),
              "repeat": args.repeat,
              "threads": torch.get_num_threads(), "cases": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"preset {args.preset}: {result['params']:,} parameters, median of {args.repeat}")
    print(f"{'transform':<22}{'alone s':>9}{'derive+commit s':>17}{'ratio':>7}{'of it fidelity s':>18}"
          f"{'ratio without':>15}{'replay s':>10}{'ratio':>7}   aims 1.3 and 1.2")
    for r in rows:
        print(f"{r['transform']:<22}{r['transform_s']:>9.3f}{r['derive_commit_s']:>17.3f}"
              f"{r['derive_vs_transform']:>7.2f}{r['fidelity_s']:>18.3f}{r['derive_without_fidelity_vs_transform']:>15.2f}"
              f"{r['replay_s']:>10.3f}{r['replay_vs_derive']:>7.2f}")


def _adapter(config, path: Path) -> Path:
    """A rank-8 LoRA adapter of every attention and MLP input projection, as PEFT names it."""
    g = torch.Generator().manual_seed(config.seed)
    tensors = {}
    for i in range(config.n_layer):
        for module, out_f in ((f"transformer.h.{i}.attn.c_attn", 3 * config.n_embd),
                              (f"transformer.h.{i}.mlp.c_fc", 4 * config.n_embd)):
            tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(8, config.n_embd, generator=g)
            tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out_f, 8, generator=g) * 1e-3
    save_file(tensors, path)
    return path


def _case(registry, source: Path, config, name: str, params: dict, repeat: int, tmp: Path) -> dict:
    label = name + (f" dtype={params['dtype']}" if "dtype" in params else " rank 8" if name == "merge-lora" else "")
    out = tmp / "alone"
    inputs = {"adapter": str(tmp / "adapter.safetensors")} if name == "merge-lora" else {}
    alone = _median(lambda: transforms.run(DeriveJob(name, params, str(source), config.to_dict(), str(out),
                                                     measure=False, inputs=inputs)), repeat)
    target = "d-" + name + ("-" + params["dtype"] if "dtype" in params else "")
    derived = []  # each derivation commits a version; the same content again is found, not recommitted
    total = _median(lambda: derived.append(registry.derive("src", 1, name, params, to=target, engine=transforms)),
                    repeat)
    replayed = _median(lambda: replay(registry, target, None, None, derive_engine=transforms), repeat)
    report = replay(registry, target, None, None, derive_engine=transforms)
    last = derived[-1]
    fidelity_s = statistics.median(d.timings["fidelity_s"] for d in derived)
    return {"transform": label, "transform_s": alone, "derive_commit_s": total, "replay_s": replayed,
            "fidelity_s": fidelity_s, "derive_vs_transform": total / alone,
            "derive_without_fidelity_vs_transform": (total - fidelity_s) / alone, "replay_vs_derive": replayed / total,
            "derive_parts_s": last.timings, "status": report.status,
            "fidelity": last.derivation["fidelity"]}


if __name__ == "__main__":
    sys.exit(main())
