"""`modelreg seal`, `modelreg dataset seal | register`, `modelreg diff`: Merkle roots and manifests of models
(local, or fetched from IPFS by CID) and datasets."""

import click
from rich.table import Table

from modelreg.cli.options import (
    connection_options,
    console,
    follow_symlinks_option,
    json_option,
    open_ipfs_store,
    open_registry,
    print_json,
)
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import checkpoint_manifest, dataset_manifest
from modelreg.formats.model import seal_model
from modelreg.formats.seal import seal_dataset

_path = click.Path(exists=False)


def _local(target: str):
    """The path itself, or what its CID names fetched from the configured IPFS store."""
    from modelreg.service.connect import local_copy  # only a CID needs the store

    return local_copy(target, open_ipfs_store)


@click.command()
@click.argument("path", metavar="PATH_OR_CID", type=_path)
@follow_symlinks_option
@json_option
def seal(path, follow_symlinks, as_json):
    """Seal the model PATH_OR_CID, a safetensors or GGUF file or a model directory: print its roots and counts.

    In a directory every *.safetensors and *.gguf file's tensors feed the tensors root
    (modelreg-tensors-v1, or -v2 with GGUF's quantized types and metadata) and every
    other file (config, tokenizer, optimizer state) the modelreg-files-v1 files root, hashed as
    bytes. A CID is fetched from the configured IPFS store first. With --json, print the whole
    sealed-only checkpoint manifest (every leaf). Nothing is loaded into torch.
    """
    with _local(path) as local:
        sealed = seal_model(local, follow_symlinks=follow_symlinks)
    if as_json:
        print_json(checkpoint_manifest(sealed))
        return
    click.echo(f"root        {sealed.root}\nformat      {sealed.tensors.format}\ntensors     {sealed.tensor_count}")
    if sealed.files is not None:
        size = sum(leaf.size for leaf in sealed.files.leaves)
        click.echo(f"files root  {sealed.files_root}\nfiles       {len(sealed.files.leaves)} ({size:,} bytes)")


@click.group()
def dataset():
    """Datasets: seal a directory of files into a modelreg-files-v1 Merkle tree, and register it."""


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


@dataset.command("register")
@click.argument("directory", type=click.Path(exists=False, file_okay=False))
@connection_options
@json_option
def dataset_register(directory, as_json):
    """Seal every file under DIRECTORY, pin its manifest to IPFS and register its root on-chain.

    The record is your signer's; registering a root you already have sends no transaction.
    Pass the root, or the directory, to `modelreg commit --dataset`.
    """
    sealed, manifest_cid = open_registry(write=True).register_dataset_dir(directory)
    if as_json:
        print_json({"root": sealed.root, "files": len(sealed.leaves), "manifest_cid": manifest_cid})
    else:
        click.echo(f"Registered dataset {sealed.root}\n  files     {len(sealed.leaves)}\n  manifest  {manifest_cid}")


@click.command()
@click.argument("a", type=_path)
@click.argument("b", type=_path)
@follow_symlinks_option
@json_option
@click.pass_context
def diff(ctx, a, b, follow_symlinks, as_json):
    """Which tensors (by name) and files (by path) B adds to A, removes from A, or changes.

    A and B are safetensors files, model directories, checkpoint manifests (JSON), or CIDs of any of
    them in the configured IPFS store; with two manifests nothing is hashed. A tensor moved to
    another shard is no change. Exit codes: 0 identical, 1 different, 2 usage or input error.
    """
    with _local(a) as local_a, _local(b) as local_b:
        result = diff_tensors(local_a, local_b, follow_symlinks=follow_symlinks)
    if as_json:
        print_json(result.as_dict())
    elif result.identical:
        click.echo("identical: same tensors (dtypes, shapes, data) and files")
    else:
        table = Table("change", "tensor or file", "what differs")
        for name in result.added:
            table.add_row("added", name, "")
        for name in result.removed:
            table.add_row("removed", name, "")
        for change in result.changed:
            table.add_row("changed", change.name, ", ".join(change.parts))
        for path in result.files_added:
            table.add_row("added", f"file {path}", "")
        for path in result.files_removed:
            table.add_row("removed", f"file {path}", "")
        for change in result.files_changed:
            table.add_row("changed", f"file {change.path}", ", ".join(change.parts))
        console().print(table)
    ctx.exit(0 if result.identical else 1)
