"""Replay benchmark: what an auditor's replay of one segment costs, against the original training of it.

    python bench/replay.py [--preset tiny] [--steps N] [--checkpoints 20] [--world-size W] [--json]

One process trains the preset with `train-and-register`'s own code (TrainingRun: the trainer,
the registrar's worker sealing and pinning each checkpoint, the contract on py-evm, the embedded
IPFS store) so that it writes --checkpoints checkpoints, each the end of a segment of
max_steps / checkpoints steps. The chain then moves one block and `audit replay --sample`'s code
picks one segment by that block's hash and replays it: every input fetched from IPFS and checked
against the chain, the steps re-executed and each batch checked, the weights sealed and compared.

With --world-size W (2 or more) the run is a DDP run of W CPU ranks on gloo, one thread each as under
torchrun: rank 0 in this process registers, the others are spawned; the replay then runs W processes.

Ratios, both against the training measured in the same run:
  replay / segment   the replay's wall time over the original time of that segment (its steps,
                     its evaluation and its checkpoint write): target <= 1.1
  replay / run       the same replay over the whole run's training time: target <= 0.06 for 20
                     checkpoints (one segment is 5% of the steps)
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


def _rank(rank: int, world_size: int, port: int, config, run_dir: Path) -> None:
    """A DDP rank other than 0: trains beside rank 0, registers nothing."""
    import os

    import torch

    from modelreg.training.register import train_unregistered

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train_unregistered(config, CORPUS_DIR, run_dir, resume=False, device="cpu")


def _spawn_ranks(world_size: int, config, run_dir: Path) -> list:
    """Ranks 1..W-1 in spawned processes; this process becomes rank 0."""
    import os
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ranks = [mp.get_context("spawn").Process(target=_rank, args=(r, world_size, port, config, run_dir))
             for r in range(1, world_size)]
    for p in ranks:
        p.start()
    return ranks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, help="override the preset's max_steps (a shorter run)")
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--world-size", type=int, default=1, help="a DDP run of this many CPU ranks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = preset(args.preset)
    steps = args.steps or config.max_steps
    config = replace(config, max_steps=steps, eval_interval=steps // args.checkpoints)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
        client = RegistryClient.deploy(w3, Signer.from_key((1).to_bytes(32, "big")))
        registry = Registry(home, Config(), rpc_url="http://127.0.0.1:1", chain_id=client.chain_id,
                            embedded_chain=False, client=client)  # in-process chain: the URL is never used
        stamps = {}
        ranks = _spawn_ranks(args.world_size, config, Path(tmp) / "run") if args.world_size > 1 else []
        t0 = time.perf_counter()
        run = TrainingRun(registry, model_name="bench", data_dir=CORPUS_DIR, run_dir=Path(tmp) / "run",
                          config=config, resume=False, quiet=True)
        commits = run.execute(device="cpu")
        run_s = time.perf_counter() - t0
        for p in ranks:
            p.join()
        journal = [json.loads(line) for line in (Path(tmp) / "run" / "journal.jsonl").read_text().splitlines()]
        stamps = {r["step"]: r["metrics"]["elapsed_s"] for r in journal if r.get("kind") == "seen"}
        training_s = stamps[config.max_steps]  # the trainer's own clock: training, not the registrar's tail

        client.register_model("bench-next")  # mines the block whose hash picks the segment
        t1 = time.perf_counter()
        report = replay_lib.replay(registry, "bench", None, execute, sample=True)
        replay_s = time.perf_counter() - t1
    (verdict,) = report.verdicts
    previous = max((s for s in stamps if s < verdict.last_step), default=None)
    segment_s = stamps[verdict.last_step] - (stamps[previous] if previous else 0.0)
    result = {
        "preset": args.preset, "checkpoints": len(commits), "steps": config.max_steps, "world_size": args.world_size,
        "replay_process": verdict.process,
        "segment": {"version": verdict.version, "first_step": verdict.first_step, "last_step": verdict.last_step},
        "verdict": verdict.status, "share_of_steps": report.share,
        "training_s": training_s, "run_with_registration_s": run_s,
        "segment_training_s": segment_s, "replay_s": replay_s,
        "ratio_replay_vs_segment": replay_s / segment_s, "ratio_replay_vs_run": replay_s / training_s,
        # On a loaded machine one segment's time swings; the mean segment is the steadier yardstick.
        "ratio_replay_vs_mean_segment": replay_s / (training_s / len(commits)),
        "sampling_block": report.sampling["block"],
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"{args.preset}: {config.max_steps} steps, {len(commits)} checkpoints, {args.world_size} rank(s), "
              f"trained in {training_s:.1f}s")
        print(f"sampled segment v{verdict.version} (steps {verdict.first_step}..{verdict.last_step}, "
              f"{report.share:.1%} of the steps): {verdict.status}")
        print(f"replay {replay_s:.2f}s vs its original training {segment_s:.2f}s: "
              f"{result['ratio_replay_vs_segment']:.2f}x (target <= 1.1); vs the mean segment "
              f"{result['ratio_replay_vs_mean_segment']:.2f}x")
        print(f"replay vs the run's training time: {result['ratio_replay_vs_run']:.1%} (target <= 6%)")
    return 0 if verdict.status == "REPRODUCED" else 1


if __name__ == "__main__":
    sys.exit(main())
