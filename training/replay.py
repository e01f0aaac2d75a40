"""Re-executing a committed stretch of training: the trainer's own step, checked batch by batch.

`execute(job)` is what `modelreg audit replay` passes to the library's replay audit
(service.replay): it rebuilds the model at the parent (or the seeded initialisation),
runs steps first..last with `trainer.train_step`, the very function training ran, and
compares each step's batch with its committed leaf before going on. On the CPU it runs
in this process when this process already computes with the recorded numerics, and
otherwise in a child process started with them (numerics.environment): the kernel code
paths are fixed when torch runs its first kernel and cannot change afterwards.

A DDP segment (transcript v3, world_size W) is re-executed by W such processes on this machine,
always children: ranks of one gloo group that meets through a file in the replay's directory
(no port to pick), each computing with the recorded numerics. They run the trainer's DDP
(distributed.wrap) and gather every rank's samples as training did; rank 0 checks each step's
leaf and writes the weights. The same W is required: another world size averages other
gradients, so a replay with it is a different computation, not a check.

    python -m modelreg.training.replay JOB.json OUTCOME.json [RANK RENDEZVOUS]   # a child process
"""

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

from modelreg.errors import ReplayUnavailable
from modelreg.service.replay import ReplayJob, ReplayOutcome
from modelreg.training import numerics

_CHILD = "a separate process with the recorded numerics"
MAX_RANKS = 64  # a transcript's world size is a claim: more processes than this are not started for it


def execute(job: ReplayJob) -> ReplayOutcome:
    """Run the job's steps here, or in a child process when this one computes with other numerics."""
    if job.world_size > 1:
        return _ranks(job)
    if job.device == "cpu" and not numerics.matches(job.numerics):
        return _in_child(job)
    return run(job)


def run(job: ReplayJob, rank: int = 0, rendezvous: str | None = None) -> ReplayOutcome:
    """Run the job's steps in this process: all of them, or rank `rank` of a DDP segment's ranks."""
    import torch

    from modelreg.training import distributed

    env = distributed.DistEnv(rank=rank, local_rank=rank, world_size=job.world_size,
                              device=f"cuda:{rank}" if job.world_size > 1 and job.device.startswith("cuda")
                              else job.device)
    if job.world_size == 1:
        return _run(job, env)
    import torch.distributed as dist

    if not dist.is_available() or (job.device == "cpu" and not dist.is_gloo_available()):
        raise ReplayUnavailable(f"this torch has no gloo backend, which the segment's {job.world_size} "
                                "CPU ranks need")
    cuda = job.device.startswith("cuda")
    if cuda and torch.cuda.device_count() < job.world_size:
        raise ReplayUnavailable(f"the segment ran on {job.world_size} ranks; replaying it on {job.device} needs "
                                f"as many GPUs, this machine has {torch.cuda.device_count()}; replay on the CPU")
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=job.world_size)
    try:
        outcome = _run(job, env)
    except BaseException:
        distributed.teardown(env, together=False)
        raise
    distributed.teardown(env)  # every rank at once, as training ends: none leaves while rank 0 writes
    return outcome


def _run(job: ReplayJob, env) -> ReplayOutcome:
    import torch

    from modelreg.training import checkpoint as ckpt
    from modelreg.training import distributed
    from modelreg.training.config import TrainConfig
    from modelreg.training.data import load_dataset
    from modelreg.training.model import GPT
    from modelreg.training.tokenizer import load_tokenizer
    from modelreg.training.trainer import batch_leaf, token_cache, tokenize, train_step

    config = TrainConfig.from_dict(job.config)
    dataset = load_dataset(job.data_dir, job.dataset_manifest)  # every file checked again against its leaf
    tokenizer, _ = load_tokenizer(Path(job.tokenizer_path), job.tokenizer_sha256)
    cache = token_cache(Path(job.cache_dir), job.dataset_manifest["root"], job.tokenizer_sha256) \
        if job.cache_dir else None
    train_data, _, starts = tokenize(dataset, tokenizer, config, cache)
    committed = {leaf.step: leaf for leaf in job.batches}
    spec = None
    if job.dp is not None:
        from modelreg.training import dp as dp_sgd

        spec = dp_sgd.DPSpec.from_dict(job.dp)
        claim = _check_dp_claim(job, spec, config, len(train_data))
        if claim is not None:
            return claim
    threads = torch.get_num_threads()
    torch.set_num_threads(job.numerics["threads"])  # ATen splits reductions by thread: same count, same sums
    try:
        torch.manual_seed(config.seed)
        model = GPT(config).to(env.device)
        from modelreg.training.optim import NAME as IEEE

        # versions trained before the portable optimizer recorded none: torch's AdamW, as they ran
        optimizer = model.configure_optimizer(config, env.device_type, ieee=job.numerics.get("optimizer") == IEEE)
        if job.parent_weights is not None:
            tensors, _ = ckpt.read_weights(Path(job.parent_weights))
            model.load_state_tensors({k: v.to(env.device) for k, v in tensors.items()})
            ckpt.load_optimizer(Path(job.parent_optimizer), model, optimizer)
        cuda = env.device_type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        stepped = distributed.wrap(model, env) if env.world_size > 1 else model  # as training wrapped it
        stepped.train()
        for step in range(job.first_step, job.last_step + 1):
            if step not in committed:  # every rank sees the same leaves, and stops at the same step
                return ReplayOutcome(steps_run=step - job.first_step, step=step)
            _, ix = train_step(stepped, optimizer, config, train_data, step, env, autocast, spec)
            if env.world_size > 1:
                ix = distributed.all_positions(env, ix)  # every rank's samples, rank 0's first
            replayed = batch_leaf(step, ix, train_data, starts, config)
            if replayed != committed[step]:
                return ReplayOutcome(steps_run=step - job.first_step + 1, step=step,
                                     committed=committed[step].to_dict(), replayed=replayed.to_dict())
            if spec is not None:  # DP: the parameters after every step, so the first noised step that differs
                digest = dp_sgd.params_sha256(model)
                claimed = job.dp["step_params_sha256"][step - job.first_step]
                if digest != claimed:
                    return ReplayOutcome(steps_run=step - job.first_step + 1, step=step,
                                         committed={"params_sha256": claimed}, replayed={"params_sha256": digest})
        if not env.is_main:
            return ReplayOutcome(steps_run=job.last_step - job.first_step + 1)
        out = Path(job.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = ckpt.CheckpointMeta(job.last_step, job.config, job.tokenizer_sha256, job.dataset_manifest["root"])
        path = ckpt.save_checkpoint(out, model, optimizer, meta)
    finally:
        torch.set_num_threads(threads)
    return ReplayOutcome(steps_run=job.last_step - job.first_step + 1, weights_path=str(path))


def _check_dp_claim(job: ReplayJob, spec, config, train_tokens: int) -> ReplayOutcome | None:
    """A DIVERGED outcome at the segment's first step when the DP claim does not follow from its parameters."""
    from modelreg.training import dp as dp_sgd

    examples = train_tokens // (config.block_size + 1)
    spent = dp_sgd.epsilon(spec.noise_multiplier, spec.sample_rate, job.last_step, spec.delta)
    planned = dp_sgd.epsilon(spec.noise_multiplier, spec.sample_rate, spec.planned_steps, spec.delta)
    why = ""
    if spec.examples != examples or abs(spec.sample_rate - config.batch_size / examples) > 1e-12:
        why = (f" (the dataset gives {examples} examples and sample rate {config.batch_size / examples:.6g}, "
               f"the transcript says {spec.examples} and {spec.sample_rate:.6g})")
    elif planned > spec.target_epsilon * (1 + 1e-6):
        why = f" (its noise multiplier reaches {planned:.6g} over the planned {spec.planned_steps} steps)"
        return ReplayOutcome(steps_run=0, step=job.first_step, committed={"epsilon": spec.target_epsilon},
                             replayed={"epsilon": planned, "why": why})
    if why or abs(spent - job.dp["epsilon_spent"]) > 1e-6 * max(spent, 1e-12):
        return ReplayOutcome(steps_run=0, step=job.first_step, committed={"epsilon": job.dp["epsilon_spent"]},
                             replayed={"epsilon": spent, "why": why})
    return None


def _in_child(job: ReplayJob) -> ReplayOutcome:
    work = Path(job.out_dir)
    work.mkdir(parents=True, exist_ok=True)
    job_path, outcome_path = work / "job.json", work / "outcome.json"
    job_path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
    env = numerics.environment(job.numerics, os.environ)
    done = subprocess.run([sys.executable, "-m", "modelreg.training.replay", str(job_path), str(outcome_path)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReplayUnavailable(f"the replay process with the recorded numerics failed: {last}")
    return ReplayOutcome(**{**json.loads(outcome_path.read_text(encoding="utf-8")), "process": _CHILD})


def _ranks(job: ReplayJob) -> ReplayOutcome:
    """A DDP segment: its world size of child processes, one per rank, on this machine."""
    if job.world_size > MAX_RANKS:
        raise ReplayUnavailable(f"the segment claims {job.world_size} ranks; a replay starts at most {MAX_RANKS} "
                                "processes")
    work = Path(job.out_dir)
    work.mkdir(parents=True, exist_ok=True)
    job_path, outcome_path, rendezvous = work / "job.json", work / "outcome.json", work / "rendezvous"
    job_path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
    env = numerics.environment(job.numerics, os.environ)
    if sys.platform == "linux":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the ranks talk over the loopback interface only
    logs, procs = [work / f"rank-{r}.log" for r in range(job.world_size)], []
    try:
        for rank, log in enumerate(logs):
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "modelreg.training.replay", str(job_path), str(outcome_path), str(rank),
                     str(rendezvous)], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))
        failed = _wait(procs)
    except OSError as e:
        raise ReplayUnavailable(f"cannot start the {job.world_size} processes the segment's ranks need: {e}") \
            from None
    finally:
        for p in procs:  # a rank that failed leaves the others waiting in a collective
            if p.poll() is None:
                p.kill()
                p.wait()
    if failed is not None:
        lines = logs[failed].read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["no output"]
        raise ReplayUnavailable(f"rank {failed} of the {job.world_size} replay processes failed: {lines[-1]}")
    return ReplayOutcome(**{**json.loads(outcome_path.read_text(encoding="utf-8")),
                            "process": f"{job.world_size} processes (DDP ranks, gloo) with the recorded numerics"})


def _wait(procs: list[subprocess.Popen]) -> int | None:
    """Wait for every process; the first rank that exits with an error, or None."""
    import time

    while True:
        codes = [p.poll() for p in procs]
        failed = next((r for r, c in enumerate(codes) if c not in (None, 0)), None)
        if failed is not None or all(c == 0 for c in codes):
            return failed
        time.sleep(0.05)


def _child(job_path: str, outcome_path: str, rank: str = "0", rendezvous: str | None = None) -> None:
    from modelreg.errors import ModelregError

    job = ReplayJob.from_dict(json.loads(Path(job_path).read_text(encoding="utf-8")))
    if not numerics.matches(job.numerics):
        raise SystemExit(f"this CPU or torch cannot compute with the recorded numerics {job.numerics} "
                         f"(here: {numerics.current()})")
    try:
        outcome = run(job, int(rank), rendezvous)
    except ModelregError as e:
        raise SystemExit(str(e)) from None
    if int(rank) == 0:
        Path(outcome_path).write_text(json.dumps(asdict(outcome)), encoding="utf-8")


if __name__ == "__main__":
    _child(*sys.argv[1:5])
    if len(sys.argv) > 3:  # a DDP rank, done and its outcome written: no interpreter teardown, in which gloo
        sys.stdout.flush()  # can still abort a process whose group is gone (bench/gloo_teardown.py)
        sys.stderr.flush()
        os._exit(0)
