"""DP-SGD benchmark: what differential privacy costs in training time, loss and replay, on the tiny preset.

    python bench/dp.py [--steps 100] [--checkpoints 4] [--epsilon 1.0] [--delta 1e-5] [--clip 1.0] [--json]

Two runs in one process, the same config, data and seed, each through `train-and-register`'s own
code (TrainingRun: trainer, registrar, contract on py-evm, embedded IPFS): one plain, one DP-SGD
(per-sample clipping by torch.func, Gaussian noise, Poisson sampling, the RDP accountant). Then the
last version of each is replayed with `audit replay`'s code.

Figures, the DP run against the plain run measured in the same process:
  train_ratio          DP training time / plain training time (the trainer's own clock): aim <= 3
  val_loss             the validation loss of each at the same step count
  epsilon              the epsilon the DP run spent by its last step (its target is --epsilon)
  replay_ratio         each replay / the original time of its segment: aim <= 1.1 for the DP one
  dp_replay_vs_plain   the DP replay's ratio over the plain replay's ratio
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
from modelreg.service import replay as replay_lib
from modelreg.service.config import Config
from modelreg.service.connect import Registry
from modelreg.training.config import preset
from modelreg.training.data import CORPUS_DIR
from modelreg.training.register import TrainingRun
from modelreg.training.replay import execute


def run_one(tmp: Path, name: str, config, dp: dict | None) -> dict:
    home = tmp / name / "home"
    home.mkdir(parents=True)
    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    client = RegistryClient.deploy(w3, Signer.from_key((1).to_bytes(32, "big")))
    registry = Registry(home, Config(), rpc_url="http://127.0.0.1:1", chain_id=client.chain_id,
                        embedded_chain=False, client=client)  # in-process chain: the URL is never used
    run_dir = tmp / name / "run"
    TrainingRun(registry, model_name=name, data_dir=CORPUS_DIR, run_dir=run_dir, config=config, resume=False,
                quiet=True, dp=dp).execute(device="cpu")
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    seen = {r["step"]: r["metrics"] for r in journal if r.get("kind") == "seen"}
    last = config.max_steps
    previous = max(s for s in seen if s < last) if len(seen) > 1 else None
    segment_s = seen[last]["elapsed_s"] - (seen[previous]["elapsed_s"] if previous else 0.0)
    t0 = time.perf_counter()
    (verdict,) = replay_lib.replay(registry, name, None, execute).verdicts
    replay_s = time.perf_counter() - t0
    return {"training_s": seen[last]["elapsed_s"], "val_loss": seen[last]["val_loss"],
            "epsilon": seen[last].get("dp_epsilon"), "segment_s": segment_s, "replay_s": replay_s,
            "replay_ratio": replay_s / segment_s, "verdict": verdict.status,
            "segment": [verdict.first_step, verdict.last_step]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = replace(preset("tiny"), max_steps=args.steps, eval_interval=max(1, args.steps // args.checkpoints))
    dp = {"epsilon": args.epsilon, "delta": args.delta, "max_grad_norm": args.clip}
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_one(Path(tmp), "plain", config, None)
        private = run_one(Path(tmp), "private", config, dp)
    result = {"preset": "tiny", "steps": args.steps, "checkpoints": args.checkpoints, "dp": dp,
              "plain": plain, "dp_run": private,
              "train_ratio": private["training_s"] / plain["training_s"],
              "dp_replay_vs_plain": private["replay_ratio"] / plain["replay_ratio"]}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"tiny, {args.steps} steps, {args.checkpoints} checkpoints; DP target epsilon {args.epsilon}, "
              f"delta {args.delta}, clip {args.clip}")
        print(f"training   plain {plain['training_s']:.1f} s, DP {private['training_s']:.1f} s: "
              f"{result['train_ratio']:.2f}x (aim <= 3)")
        print(f"val loss   plain {plain['val_loss']:.3f}, DP {private['val_loss']:.3f} at step {args.steps}")
        print(f"epsilon    {private['epsilon']:.4f} spent by step {args.steps}")
        print(f"replay     plain {plain['replay_ratio']:.2f}x its segment ({plain['verdict']}), DP "
              f"{private['replay_ratio']:.2f}x ({private['verdict']}) (aim <= 1.1); DP/plain "
              f"{result['dp_replay_vs_plain']:.2f}")
    return 0 if plain["verdict"] == private["verdict"] == "REPRODUCED" else 1


if __name__ == "__main__":
    sys.exit(main())
