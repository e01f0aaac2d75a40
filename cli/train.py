"""`modelreg train-and-register`: train from scratch and register every checkpoint as it is written."""

import os
import shlex
from dataclasses import replace
from pathlib import Path

import click
from rich.table import Table

from modelreg._extras import require
from modelreg.chain.names import check_model_name
from modelreg.cli.options import (
    connection_options,
    console,
    home_of,
    json_option,
    open_registry,
    print_json,
    short,
)
from modelreg.errors import InputInvalid, ModelregError
from modelreg.home import Home


def _run_dir(home: Home, model_name: str, chosen: Path | None) -> Path:
    """The run directory, refused unless it lies inside the data directory (a model name such as
    ../../x must not write checkpoints elsewhere)."""
    runs, root = home.runs, home.root.resolve()
    run_dir = (chosen if chosen is not None else runs / model_name).resolve()
    if chosen is None and run_dir.parent != runs.resolve():
        raise InputInvalid(f"--model {model_name!r} would put its run directory at {run_dir}, outside "
                           f"{runs}; choose a model name without '/' or '..'")
    if not run_dir.is_relative_to(root) or run_dir == root:
        raise InputInvalid(f"--run-dir {run_dir} is not inside the data directory {home}; choose a directory "
                           "under it (or another --home)")
    return run_dir


def _resume_command() -> str:
    """The command line as typed, with --resume: what to run once a failed registration is fixed."""
    args = click.get_current_context().find_root().command.args
    return shlex.join(["modelreg", *args, *([] if "--resume" in args else ["--resume"])])


DEFAULT_DATA = Path(__file__).resolve().parent.parent / "training" / "corpus" / "shakespeare"  # = training.data.CORPUS_DIR


@click.command("train-and-register")
@click.option("--preset", "preset_name", type=click.Choice(["tiny", "small"]), default="tiny",
              show_default=True, help="Training configuration: tiny for a CPU, small for a GPU.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_DATA, show_default="the committed corpus",
              help="Directory of text files to train on; sealed and registered as the dataset.")
@click.option("--model", "model_name", default=None, help="Model name on-chain [default: gpt-PRESET].")
@click.option("--steps", type=click.IntRange(1), help="Override the preset's number of optimizer steps.")
@click.option("--eval-interval", type=click.IntRange(1), help="Override how often to evaluate and checkpoint.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), help="Override the preset's seed (torch takes 64 bits).")
@click.option("--device", help="torch device (cpu, cuda); default: cuda when present.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where checkpoints and the journal go [default: HOME/runs/MODEL].")
@click.option("--resume", is_flag=True, help="Continue a killed or finished run: register what it left, "
                                             "then train from its newest checkpoint.")
@click.option("--keep-training", is_flag=True,
              help="If a registration fails, train on and journal every checkpoint for a later --resume "
                   "[default: stop at the next checkpoint].")
@click.option("--dp-epsilon", type=float, metavar="E",
              help="Train with DP-SGD to (E, delta)-differential privacy over the planned steps.")
@click.option("--dp-delta", type=float, metavar="D", help="DP delta [default: 1e-5]; below 1/examples.")
@click.option("--dp-max-grad-norm", type=float, metavar="C",
              help="DP-SGD per-sample clipping norm [default: 1.0].")
@connection_options
@json_option
def train_and_register(preset_name, data_dir, model_name, steps, eval_interval, seed, device, run_dir,
                       resume, keep_training, dp_epsilon, dp_delta, dp_max_grad_norm, as_json):
    """Train a GPT language model from scratch and register every checkpoint.

    The dataset is sealed and registered first; each checkpoint is then sealed, pinned to IPFS
    and committed on-chain with the previous checkpoint as its parent, in a background worker
    so training never waits. Kill it at any moment and run it again with --resume.
    """
    require("train", "train-and-register")
    from modelreg.training.config import preset
    from modelreg.training.device import check_device
    from modelreg.training.register import TrainingRun, train_unregistered  # torch is slow to import

    if dp_epsilon is None and (dp_delta is not None or dp_max_grad_norm is not None):
        raise InputInvalid("--dp-delta and --dp-max-grad-norm need --dp-epsilon; give the epsilon to train for")
    dp = None if dp_epsilon is None else {
        "epsilon": dp_epsilon, "delta": 1e-5 if dp_delta is None else dp_delta,
        "max_grad_norm": 1.0 if dp_max_grad_norm is None else dp_max_grad_norm}
    overrides = {k: v for k, v in {"max_steps": steps, "eval_interval": eval_interval, "seed": seed}.items()
                 if v is not None}
    config = replace(preset(preset_name), **overrides)
    model_name = f"gpt-{preset_name}" if model_name is None else model_name
    if not model_name:
        raise InputInvalid("--model is empty; give the model a name, or leave --model out for gpt-PRESET")
    check_model_name(model_name)  # the contract's rule, before anything is written
    check_device(device)
    run_dir = _run_dir(home_of(), model_name, run_dir)
    if dp is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputInvalid("DP-SGD training runs in one process (it draws one Poisson sample of the whole "
                           "dataset and one noise per step; splitting those over ranks is not built); "
                           "run it without torchrun")
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun: only rank 0 talks to IPFS and the chain
        return train_unregistered(config, data_dir, run_dir, resume=resume, device=device)
    registry = open_registry(write=True)
    run = TrainingRun(registry, model_name=model_name, data_dir=data_dir, run_dir=run_dir,
                      config=config, resume=resume, quiet=as_json, keep_training=keep_training, dp=dp)
    try:
        commits = run.execute(device=device)
    except ModelregError as e:
        if getattr(e, "pending", 0):
            raise type(e)(f"{e}; then run: {_resume_command()}") from None
        raise
    if as_json:
        return print_json({"model": model_name, "model_id": run.model_id, "dataset_root": run.dataset_root,
                           "run_dir": str(run_dir), "versions": [c.to_dict() for c in commits]})
    table = Table(title=f"{model_name}: registered checkpoints (--json for whole hashes)")
    for column in ("version", "step", "val loss", "weights root", "manifest CID", "tx", "block"):
        table.add_column(column, overflow="fold")
    for c in commits:
        loss = f"{c.val_loss:.4f}" if c.val_loss is not None else "-"
        table.add_row(str(c.version), str(c.step), loss, short(c.root), short(c.manifest_cid), short(c.tx),
                      str(c.block))
    console().print(table)
    click.echo(f"Checkpoints and the commit journal are in {run_dir}")
