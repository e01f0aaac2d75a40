"""Re-executing a committed stretch of training: the trainer's own step, checked batch by batch.

`execute(job)` is what `modelreg audit replay` passes to the library's replay audit
(service.replay): it rebuilds the model at the parent (or the seeded initialisation),
runs steps first..last with `trainer.train_step`, the very function training ran, and
compares each step's batch with its committed leaf before going on. On the CPU it runs
in this process when this process already computes with the recorded numerics, and
otherwise in a child process started with them (numerics.environment): the kernel code
paths are fixed when torch runs its first kernel and cannot change afterwards.

    python -m modelreg.training.replay JOB.json OUTCOME.json   # the child process
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


def execute(job: ReplayJob) -> ReplayOutcome:
    """Run the job's steps here, or in a child process when this one computes with other numerics."""
    if job.device == "cpu" and not numerics.matches(job.numerics):
        return _in_child(job)
    return run(job)


def run(job: ReplayJob) -> ReplayOutcome:
    """Run the job's steps in this process."""
    import torch

    from modelreg.training import checkpoint as ckpt
    from modelreg.training.config import TrainConfig
    from modelreg.training.data import load_dataset
    from modelreg.training.distributed import DistEnv
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
    env = DistEnv(rank=0, local_rank=0, world_size=1, device=job.device)
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
        model.train()
        for step in range(job.first_step, job.last_step + 1):
            if step not in committed:
                return ReplayOutcome(steps_run=step - job.first_step, step=step)
            _, ix = train_step(model, optimizer, config, train_data, step, env, autocast, spec)
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


def _child(job_path: str, outcome_path: str) -> None:
    job = ReplayJob.from_dict(json.loads(Path(job_path).read_text(encoding="utf-8")))
    if not numerics.matches(job.numerics):
        raise SystemExit(f"this CPU or torch cannot compute with the recorded numerics {job.numerics} "
                         f"(here: {numerics.current()})")
    Path(outcome_path).write_text(json.dumps(asdict(run(job))), encoding="utf-8")


if __name__ == "__main__":
    _child(*sys.argv[1:3])
