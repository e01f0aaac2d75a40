"""`modelreg seal`, `modelreg dataset seal`, `modelreg diff`: Merkle roots and manifests of local files."""

import click
from rich.table import Table

from modelreg.cli.options import console, json_option, print_json
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import checkpoint_manifest, dataset_manifest
from modelreg.formats.seal import seal_checkpoint, seal_dataset

_path = click.Path(exists=False, dir_okay=False)


@click.command()
@click.argument("path", type=_path)
@json_option
def seal(path, as_json):
    """Seal the safetensors checkpoint PATH: print its modelreg-tensors-v1 root and tensor count.

    With --json, print the whole sealed-only checkpoint manifest (every tensor leaf).
    Nothing is loaded into torch and nothing is sent anywhere.
    """
    sealed = seal_checkpoint(path)
    if as_json:
        print_json(checkpoint_manifest(sealed))
    else:
        click.echo(f"root     {sealed.root}\nformat   {sealed.format}\ntensors  {len(sealed.leaves)}")


@click.group()
def dataset():
    """Datasets: seal a directory of files into a modelreg-files-v1 Merkle tree."""


@dataset.command("seal")
@click.argument("directory", type=click.Path(exists=False, file_okay=False))
@json_option
def dataset_seal(directory, as_json):
    """Seal every file under DIRECTORY (hidden files included): print the root and file count.

    Symbolic links, special files and non-UTF-8 names are refused, never followed or skipped.
    With --json, print the dataset manifest (every file's path, size and sha256).
    """
    sealed = seal_dataset(directory)
    if as_json:
        print_json(dataset_manifest(sealed))
    else:
        size = sum(leaf.size for leaf in sealed.leaves)
        click.echo(f"root     {sealed.root}\nformat   {sealed.format}\nfiles    {len(sealed.leaves)} "
                   f"({size:,} bytes)")


@click.command()
@click.argument("a", type=_path)
@click.argument("b", type=_path)
@json_option
@click.pass_context
def diff(ctx, a, b, as_json):
    """Which tensors B adds to A, removes from A, or changes (dtype, shape or data), by name.

    A and B are safetensors checkpoints or checkpoint manifests (JSON); with two
    manifests nothing is hashed. Exit codes: 0 identical, 1 different, 2 usage or input error.
    """
    result = diff_tensors(a, b)
    if as_json:
        print_json(result.as_dict())
    elif result.identical:
        click.echo("identical: same tensors, dtypes, shapes and data")
    else:
        table = Table("change", "tensor", "what differs")
        for name in result.added:
            table.add_row("added", name, "")
        for name in result.removed:
            table.add_row("removed", name, "")
        for change in result.changed:
            table.add_row("changed", change.name, ", ".join(change.parts))
        console().print(table)
    ctx.exit(0 if result.identical else 1)
