"""Fault run: two gloo ranks that end at different times, left three ways.

    python bench/gloo_teardown.py [--runs 30] [--busy 0.5] [--json]

Each run starts two processes that meet through a file:// rendezvous, as a DDP replay's ranks do
(training/replay.py), take three DDP steps and one all_gather, and then end: rank 0 stays busy for
--busy seconds first (a replay's rank 0 writes the weights), rank 1 does not. Without a barrier
rank 1 destroys its process group while rank 0 is still busy, and gloo sometimes aborts it with
"terminate called without an active exception" (exit 134): the failure CI met once in a full
suite. A barrier alone still lets about one run in 20 abort, at interpreter exit, after
destroy_process_group has returned. `distributed.teardown`, which training and the replay's ranks
both end with now, takes the barrier and collects garbage before destroying the group (what still
refers to the group's work goes while the group and the interpreter stand); the replay's ranks then
leave with os._exit. Measured on 2026-12-07 on the 2-core CI machine, --runs 60: destroy alone
6/60 runs failed, barrier 3/60, teardown 0/60 (and 0/40 in a first, hand-run trial). The C++ cause
inside gloo was not identified; the figures are what the fix rests on.

Prints, for each mode, how many runs had a rank exit non-zero, and the last line such a rank printed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RANK = r"""
import sys, time, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from modelreg.training import distributed
rank, rendezvous, mode, busy = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)

def steps():
    model = DDP(torch.nn.Linear(64, 64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        model(torch.randn(8, 64)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    gathered = [torch.zeros(4, dtype=torch.long) for _ in range(2)]
    dist.all_gather(gathered, torch.arange(4))

steps()
if rank == 0:
    time.sleep(busy)
if mode == "teardown":
    distributed.teardown(distributed.DistEnv(rank, rank, 2, "cpu"))
else:
    if mode == "barrier":
        dist.barrier()
    dist.destroy_process_group()
"""


MODES = {
    "destroy": "destroy_process_group alone (the replay before this fix)",
    "barrier": "a barrier, then destroy_process_group (training before this fix)",
    "teardown": "training.distributed.teardown: a barrier, gc.collect(), destroy_process_group (both now)",
}


def one_run(work: Path, mode: str, busy: float) -> tuple[int, str]:
    """Both ranks' exit codes, worst first, and the failing rank's last line."""
    rendezvous = work / "rendezvous"
    rendezvous.unlink(missing_ok=True)
    env = {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform == "linux" else {}
    procs = [subprocess.Popen([sys.executable, "-c", RANK, str(rank), str(rendezvous), mode, str(busy)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, **env}) for rank in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for p, out in zip(procs, outs):
        if p.returncode != 0:
            return p.returncode, (out.strip().splitlines() or ["no output"])[-1]
    return 0, ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--busy", type=float, default=0.5, help="seconds rank 0 works after the last collective")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            failed, last = 0, ""
            for _ in range(args.runs):
                code, line = one_run(Path(tmp), mode, args.busy)
                if code:
                    failed, last = failed + 1, f"exit {code}: {line}"
            rows.append({"mode": mode, "runs": args.runs, "failed": failed, "last_failure": last})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['mode']:>9}: {row['failed']}/{row['runs']} runs had a rank fail"
              f"{(' (' + row['last_failure'] + ')') if row['failed'] else ''}  [{MODES[row['mode']]}]")


if __name__ == "__main__":
    main()
