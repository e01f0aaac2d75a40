"""`modelreg commit`: seal, pin and commit any model, a safetensors file or a model directory."""

import math
import re
from pathlib import Path

import click

from modelreg.cli.options import (
    connection_options,
    depth_text,
    follow_symlinks_option,
    json_option,
    open_registry,
    print_json,
)

_ROOT = re.compile(r"0x[0-9a-fA-F]{64}")


class _Metric(click.ParamType):
    name = "name=value"

    def convert(self, value, param, ctx):
        name, sep, number = value.partition("=")
        try:
            parsed = float(number)
        except ValueError:
            parsed = math.nan
        if not sep or not name or not math.isfinite(parsed):
            self.fail(f"{value!r} is not name=value with a finite number, e.g. --metric eval_loss=2.31", param, ctx)
        return name, parsed


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model", required=True, help="Model name; registered, with you as owner, if new.")
@click.option("--dataset", help="What it was trained on: a dataset directory (sealed and registered) "
                                "or the root (0x...) of a registered dataset.")
@click.option("--parent", help="The version it was trained from: V (a version of --model) or MODEL:V.")
@click.option("--metric", "metrics", type=_Metric(), multiple=True,
              help="A metric recorded in the manifest, name=value (repeatable).")
@click.option("--note", help="Free text recorded in the manifest.")
@click.option("--wait", is_flag=True, help="Return only once the commit is final (--confirmations), sending it "
                                           "again if a reorg takes its block back meanwhile.")
@follow_symlinks_option
@connection_options
@json_option
def commit(path, model, dataset, parent, metrics, note, wait, follow_symlinks, as_json):
    """Commit the model PATH, a safetensors file or a model directory, as the next version of MODEL.

    PATH is sealed (every tensor of every *.safetensors shard; every other file as bytes), pinned
    to IPFS (a directory as a UnixFS directory) with its manifest, and committed on-chain.
    Content the model already holds is not committed again: its version is printed, exit 0.
    """
    registry = open_registry(write=True)
    dataset_root = _dataset_root(registry, dataset)
    c = registry.commit(path, model, parent=_parent(registry, parent), dataset_root=dataset_root,
                        metrics=dict(metrics), note=note, follow_symlinks=follow_symlinks, wait=wait)
    depth = registry.depth(c.block)
    if as_json:
        print_json({**c.to_dict(), "depth": depth})
    elif c.existing:
        click.echo(f"{model} already holds this model as version {c.version} (weights root {c.root}); "
                   "nothing new committed")
    else:
        files = f"  files root    {c.files_root}\n" if c.files_root else ""
        click.echo(f"Committed {path} as {model} version {c.version}, {depth_text(depth)}\n"
                   f"  weights root  {c.root} ({c.tensor_count} tensors)\n{files}"
                   f"  CID           {c.checkpoint_cid}\n  manifest      {c.manifest_cid}\n"
                   f"  tx            {c.tx} (block {c.block})")


def _parent(registry, parent: str | None):
    if parent is None:
        return None
    name, _, number = parent.rpartition(":")
    if not number.isdigit() or int(number) < 1:
        raise click.BadParameter(f"{parent!r} is not V or MODEL:V (a version number from 1)", param_hint="--parent")
    if not name:
        return int(number)
    from modelreg.records import VersionRef

    return VersionRef(registry.model_id(name), int(number))


def _dataset_root(registry, dataset: str | None) -> str | None:
    if dataset is None or _ROOT.fullmatch(dataset):
        return dataset.lower() if dataset else None
    if not Path(dataset).is_dir():
        raise click.BadParameter(f"{dataset!r} is neither a directory nor a dataset root (0x and 64 hex digits)",
                                 param_hint="--dataset")
    sealed, _ = registry.register_dataset_dir(dataset)
    return sealed.root
