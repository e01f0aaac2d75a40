"""`modelreg commit`: seal, pin and commit any model, a safetensors or GGUF file or a model directory."""

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
@click.option("--derived-from", "derived_from", metavar="MODEL:VERSION",
              help="PATH was derived elsewhere from this version by --transform: the parent edge is "
                   "'derived by NAME'; a transform modelreg knows is checked by `audit replay`.")
@click.option("--transform", metavar="NAME", help="With --derived-from: the transform's name (see `modelreg derive`).")
@click.option("--param", "params", multiple=True, metavar="k=v", help="With --transform: a parameter (repeatable).")
@click.option("--wait", is_flag=True, help="Return only once the commit is final (--confirmations), sending it "
                                           "again if a reorg takes its block back meanwhile.")
@follow_symlinks_option
@connection_options
@json_option
def commit(path, model, dataset, parent, metrics, note, derived_from, transform, params, wait, follow_symlinks,
           as_json):
    """Commit the model PATH, a safetensors or GGUF file or a model directory, as the next version of MODEL.

    PATH is sealed (every tensor of every *.safetensors and *.gguf file; every other file as bytes), pinned
    to IPFS (a directory as a UnixFS directory) with its manifest, and committed on-chain.
    Content the model already holds is not committed again: its version is printed, exit 0.
    """
    if derived_from or transform:
        return _commit_derived(path, model, derived_from, transform, params, (dataset, parent, metrics, note), as_json)
    _check_dataset(dataset)
    registry = open_registry(write=True)
    c = registry.commit(path, model, parent=_parent(registry, parent), dataset=dataset,
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


def _check_dataset(dataset: str | None) -> None:
    """The form of --dataset, before the chain is reached; what it names is checked by the commit itself."""
    if dataset is not None and not _ROOT.fullmatch(dataset) and not Path(dataset).is_dir():
        raise click.BadParameter(f"{dataset!r} is neither a directory nor a dataset root (0x and 64 hex digits)",
                                 param_hint="--dataset")


def _commit_derived(path, model, derived_from, transform, params, others, as_json):
    from modelreg.cli.derive import _Param, parse_source, transforms_engine
    from modelreg.service.derive import commit_derived

    transforms = transforms_engine()

    if not (derived_from and transform):
        raise click.UsageError("--derived-from MODEL:VERSION and --transform NAME go together")
    if any(others[:2]) or others[2] or others[3]:
        raise click.UsageError("--derived-from takes no --dataset, --parent, --metric or --note: the source "
                               "version is the parent")
    source, version = parse_source(derived_from)
    if version is None:
        raise click.BadParameter(f"{derived_from!r} names no version; use MODEL:VERSION", param_hint="--derived-from")
    pairs = dict(_Param().convert(p, None, None) for p in params)
    c = commit_derived(open_registry(write=True), path, model, source, version, transform, pairs, transforms)
    if as_json:
        return print_json(c.to_dict())
    checked = "audit replay re-derives it" if transform in transforms.known() else (
        f"{transform!r} is no transform modelreg knows: the edge is recorded, not checkable")
    click.echo(f"Committed {path} as {model} version {c.version}, derived by {transform} from {derived_from} "
               f"({checked})\n  weights root  {c.root} ({c.tensor_count} tensors)\n  tx            {c.tx}")
