"""Network soak: train-and-register against anvil with reorgs, dropped transactions, fee spikes and a flaky endpoint.

    python bench/network.py [--json] [--checkpoints 20] [--confirmations 4] [--block-time 0.25] [--seed 0]
                            [--eval-interval 1]

Two runs of `modelreg train-and-register --preset tiny` (a checkpoint every --eval-interval steps), each on a
fresh anvil that mines a block every --block-time seconds (automine off, as a testnet):

- baseline: no faults;
- soak: the CLI reaches anvil through a FaultInjectingRpcProxy answering some requests with HTTP
  429 or 503 or a reset connection, while a chaos thread reorganises the chain 1 to 3 blocks deep
  every 3 to 6 blocks, drops pending transactions from the mempool and spikes the base fee.

Then, read from anvil directly: every checkpoint must be committed exactly once, in parent order
(lost and duplicated versions: aim 0 and 0), and `modelreg verify` of the last checkpoint must say
VERIFIED, final at --confirmations (deeper than any reorg injected). Reported: reorgs, drops and
spikes injected, proxy faults (each one a retry by the client), re-commits after reorgs, fee bumps,
re-sends after drops, the time from a drop to the re-send, and the soak's wall time over the baseline's.
"""

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import anvil_chain  # noqa: E402  (bench runs from a checkout)
from tests.rpc_faults import FaultInjectingRpcProxy  # noqa: E402

DATA = ROOT / "training" / "corpus" / "shakespeare"
MODEL = "soak"


def _cli(home: Path, *args) -> list[str]:
    return [sys.executable, "-m", "modelreg.cli", "--home", str(home), *map(str, args)]


def _small_data(directory: Path) -> Path:
    directory.mkdir()
    for source in sorted(DATA.glob("*.txt"))[:2]:
        (directory / source.name).write_bytes(source.read_bytes()[:30_000])
    return directory


class Chaos:
    """Mines blocks, and with `faults`, reorganises, drops and spikes; counts what it did."""

    def __init__(self, chain, *, block_time: float, faults: bool, seed: int):
        self.chain, self.block_time, self.faults = chain, block_time, faults
        self.rng = random.Random(seed)
        self.reorgs: list[int] = []  # depths
        self.drops = self.spikes = 0
        self.drop_to_resend: list[float] = []
        self._dropped: dict[tuple[str, int], float] = {}  # (sender, nonce) -> when dropped
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def rpc(self, method, *params):
        reply = self.chain.w3.provider.make_request(method, list(params))
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _run(self):
        next_reorg = self.rng.randint(3, 6)
        while not self.stop.wait(self.block_time):
            pending = self.rpc("txpool_content")["pending"]
            self._note_resends(pending)
            if self.faults and pending and self.rng.random() < 0.3:
                sender, by_nonce = self.rng.choice(sorted(pending.items()))
                nonce, tx = self.rng.choice(sorted(by_nonce.items()))
                self.rpc("anvil_dropTransaction", tx["hash"])
                self._dropped[(sender.lower(), int(nonce))] = time.monotonic()
                self.drops += 1
            if self.faults and self.rng.random() < 0.04:
                base = self.chain.w3.eth.get_block("latest")["baseFeePerGas"]
                self.rpc("anvil_setNextBlockBaseFeePerGas", hex(max(base, 10**9) * self.rng.randint(5, 20)))
                self.spikes += 1
            self.rpc("evm_mine")
            next_reorg -= 1
            if self.faults and next_reorg <= 0:
                depth = self.rng.randint(1, 3)
                self.rpc("anvil_reorg", depth, [])
                self.reorgs.append(depth)
                next_reorg = self.rng.randint(3, 6)

    def _note_resends(self, pending: dict) -> None:
        for sender, by_nonce in pending.items():
            for nonce in by_nonce:
                dropped = self._dropped.pop((sender.lower(), int(nonce)), None)
                if dropped is not None:
                    self.drop_to_resend.append(time.monotonic() - dropped)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _versions(chain, home: Path) -> list:
    from modelreg.chain.client import RegistryClient

    client = RegistryClient.from_home(chain.w3, None, home)
    model_id = client.model_id(MODEL)
    return [client.get_version(model_id, v) for v in range(1, client.version_count(model_id) + 1)], model_id


def run(args, *, faults: bool, work: Path) -> dict:
    from modelreg.formats.seal import seal_checkpoint

    home = work / ("soak" if faults else "baseline")
    data = _small_data(work / f"data-{home.name}")
    with anvil_chain() as chain, FaultInjectingRpcProxy(chain.rpc_url, seed=args.seed) as proxy:
        subprocess.run(_cli(home, "deploy", "--rpc-url", chain.rpc_url), check=True, capture_output=True)
        chain.w3.provider.make_request("anvil_mine", [hex(args.confirmations + 2)])  # the deployment is final
        chain.w3.provider.make_request("evm_setAutomine", [False])
        if faults:
            proxy.chance = {"429": 0.03, "503": 0.02, "reset": 0.02}
        steps = args.eval_interval * args.checkpoints
        with Chaos(chain, block_time=args.block_time, faults=faults, seed=args.seed) as chaos:
            started = time.monotonic()
            train = subprocess.run(
                _cli(home, "train-and-register", "--data", data, "--model", MODEL, "--steps", steps,
                     "--eval-interval", args.eval_interval, "--rpc-url", proxy.url, "--confirmations", args.confirmations,
                     "--resend-after", 2, "--timeout", 60, "--json"), capture_output=True, text=True, timeout=1500)
            wall = time.monotonic() - started
            chaos.stop.set()
        if train.returncode != 0:
            raise SystemExit(f"train-and-register failed ({train.returncode}):\n{train.stderr[-3000:]}")
        chain.w3.provider.make_request("anvil_mine", [hex(args.confirmations)])
        run_dir = home / "runs" / MODEL
        checkpoints = sorted(p for p in run_dir.glob("ckpt-*.safetensors") if ".optim." not in p.name)
        roots = [seal_checkpoint(p).root for p in checkpoints]
        versions, model_id = _versions(chain, home)
        on_chain = [v.weights_root for v in versions]
        in_parent_order = all(v.parent == ((model_id, v.version - 1) if v.version > 1 else None) for v in versions)
        verify = subprocess.run(_cli(home, "verify", checkpoints[-1], "--model", MODEL, "--rpc-url", chain.rpc_url,
                                     "--confirmations", args.confirmations, "--json"),
                                capture_output=True, text=True)
        verdict = json.loads(verify.stdout) if verify.stdout.strip().startswith("{") else {}
        err = train.stderr
        return {
            "wall_s": round(wall, 2),
            "checkpoints": len(checkpoints),
            "versions": len(versions),
            "lost": len([r for r in roots if r not in on_chain]),
            "duplicated": len(on_chain) - len(set(on_chain)),
            "in_parent_order": in_parent_order,
            "verify_last": verdict.get("status"),
            "verify_depth": verdict.get("depth"),
            "verify_exit": verify.returncode,
            "reorgs_injected": len(chaos.reorgs),
            "reorg_depths": chaos.reorgs,
            "drops_injected": chaos.drops,
            "fee_spikes_injected": chaos.spikes,
            "proxy_faults_retried": proxy.injected,
            "recommits_after_reorg": len(re.findall(r"left the canonical chain", err)),
            "steps_reported_recommitted": len(re.findall(r"re-committed after a reorg", err)),
            "resends_after_drop": len(re.findall(r"was dropped by the node", err)),
            "fee_bumps": len(re.findall(r" sent again as 0x", err)),
            "drop_to_resend_s": (round(statistics.median(chaos.drop_to_resend), 3)
                                 if chaos.drop_to_resend else None),
            "drop_to_resend_max_s": round(max(chaos.drop_to_resend), 3) if chaos.drop_to_resend else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--confirmations", type=int, default=4, help="deeper than any reorg injected (3)")
    parser.add_argument("--block-time", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-interval", type=int, default=1, help="training steps per checkpoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = run(args, faults=False, work=Path(tmp))
        soak = run(args, faults=True, work=Path(tmp))
    result = {"checkpoints": args.checkpoints, "confirmations": args.confirmations, "block_time_s": args.block_time,
              "baseline": baseline, "soak": soak,
              "wall_ratio_soak_over_baseline": round(soak["wall_s"] / baseline["wall_s"], 2)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.checkpoints} checkpoints, {args.confirmations} confirmations, a block every {args.block_time} s")
    for name, r in (("baseline", baseline), ("soak", soak)):
        print(f"  {name:9} {r['wall_s']:7.1f} s  versions {r['versions']}/{r['checkpoints']}  lost {r['lost']}  "
              f"duplicated {r['duplicated']}  parent order {r['in_parent_order']}  verify {r['verify_last']}")
    print(f"  injected: {soak['reorgs_injected']} reorgs {soak['reorg_depths']}, {soak['drops_injected']} drops, "
          f"{soak['fee_spikes_injected']} fee spikes, proxy faults {soak['proxy_faults_retried']}")
    print(f"  handled: {soak['recommits_after_reorg']} re-sends after reorgs, {soak['fee_bumps']} fee bumps, "
          f"{soak['resends_after_drop']} re-sends after drops (drop to re-send median {soak['drop_to_resend_s']} s)")
    print(f"  wall time, soak over baseline: {result['wall_ratio_soak_over_baseline']}x")


if __name__ == "__main__":
    main()
