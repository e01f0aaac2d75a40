"""`modelreg derive`: commit a cast, quantized or ONNX-exported version, with an edge anyone can re-derive."""

from pathlib import Path

import click

from modelreg.cli.options import connection_options, json_option, open_registry, print_json


class _Param(click.ParamType):
    name = "k=v"

    def convert(self, value, param, ctx):
        key, sep, val = value.partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not k=v, e.g. --param dtype=bf16", param, ctx)
        return key, val


def parse_source(value: str) -> tuple[str, int | None]:
    """MODEL or MODEL:VERSION."""
    name, sep, number = value.rpartition(":")
    if not sep:
        return value, None
    if not name or not number.isdigit() or int(number) < 1:
        raise click.BadParameter(f"{value!r} is not MODEL or MODEL:VERSION (a version number from 1)",
                                 param_hint="SOURCE")
    return name, int(number)


def transforms_engine():
    """modelreg.training.transforms: torch is slow to import, and absent from a core install."""
    from modelreg._extras import require

    require("train", "a derivation")  # one Error line naming the extra, not an ImportError
    from modelreg.training import transforms

    return transforms


transform_option = click.option(
    "--transform", "transform", required=True, metavar="NAME",
    help="cast (--param dtype=fp16|bf16), int8-weight-only (per output channel, scales as NAME.scale), "
         "onnx (opset 17; initializers read from model.safetensors) or merge-lora (--param adapter=CID of a "
         "pinned PEFT adapter, --param scale=ALPHA/R).")
param_option = click.option("--param", "params", type=_Param(), multiple=True,
                            help="A parameter of the transform, k=v (repeatable).")


@click.command()
@click.argument("source")
@transform_option
@param_option
@click.option("--to", "to", required=True, help="The model the derived version is committed to (may be SOURCE's).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the derived model in this directory.")
@click.option("--local", type=click.Path(exists=True, path_type=Path),
              help="A copy of the source to use instead of fetching it by CID; checked against the chain first.")
@connection_options
@json_option
def derive(source, transform, params, to, output, local, as_json):
    """Derive a version of --to from SOURCE (MODEL or MODEL:VERSION, default the newest) by a transform.

    The source is fetched by its CID (or --local) and checked against the chain; a revoked one is
    refused. The transform runs on the CPU, deterministically; the result is sealed, pinned and
    committed with SOURCE as its parent, its manifest recording the source's roots, the transform,
    the tool versions and the fidelity (max |logit difference| on a probe batch, validation
    perplexity of both). `modelreg audit replay` re-derives it.
    """
    transforms = transforms_engine()
    model, version = parse_source(source)
    derived = open_registry(write=True).derive(model, version, transform, dict(params), to=to, engine=transforms,
                                               out_dir=output, local=local)
    if as_json:
        return print_json({"commit": derived.commit.to_dict(), "derivation": derived.derivation,
                           "path": derived.path, "timings": derived.timings})
    from modelreg.service.derive import fidelity_summary

    c, d = derived.commit, derived.derivation
    params_text = " ".join(f"{k}={v}" for k, v in d["transform"]["params"].items())
    kept = f"  written to     {derived.path}\n" if derived.path else ""
    if c.existing:
        kept += f"  (version {c.version} already held exactly this content: nothing new was committed)\n"
    click.echo(f"Derived {model} v{d['source']['version']} {d['kind']}{' (' + params_text + ')' if params_text else ''}"
               f" as {to} version {c.version}\n"
               f"  weights root   {c.root} ({c.tensor_count} tensors)\n"
               + (f"  files root     {c.files_root}\n" if c.files_root else "")
               + f"  CID            {c.checkpoint_cid}\n  manifest       {c.manifest_cid}\n"
               f"  tx             {c.tx} (block {c.block})\n{kept}"
               f"  fidelity       {fidelity_summary(d['fidelity'])}")
