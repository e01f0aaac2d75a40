"""modelreg: prove which weights a model version has, and where they came from.

The pipeline, in the order data flows through it, one subpackage a layer:

- `modelreg.formats`: a model (a safetensors file, or a directory of shards, config and
  tokenizer files) or a dataset directory is sealed into Merkle trees (OpenZeppelin
  StandardMerkleTree layout) and described by a canonical manifest.
- `modelreg.ipfs`: the checkpoint and its manifest are pinned as UnixFS files, in the embedded
  blockstore or a Kubo daemon, with the CIDs Kubo gives.
- `modelreg.chain`: the roots, the parent and the manifest CID are committed through the
  ModelRegistry contract.
- `modelreg.service`: configuration and connection, `commit`, the background registrar,
  `verify` (recompute a root, compare it with the chain) and `audit` (history and lineage
  from contract events).

This API is stable:

    import modelreg

    sealed = modelreg.seal("ckpt.safetensors")           # sealed.root: the weights root; or a directory
    registry = modelreg.connect()                          # the embedded devnet and IPFS store
    commit = registry.commit("ckpt.safetensors", "my-gpt") # commit.version, commit.tx
    assert registry.verify("ckpt.safetensors", "my-gpt").ok
    registry.history("my-gpt")                             # every version, with revocations

In a training loop, `modelreg.BackgroundCommitter` commits each saved checkpoint while training
goes on; for `transformers.Trainer`, `modelreg.integrations.transformers.RegistryCallback`.

Every error is a `modelreg.ModelregError`; `VerificationFailed` and its subclasses mean the
thing checked is not what the record says. Nothing here imports `modelreg.training` or
`modelreg.cli`. Submodules load on first use, so `import modelreg` stays fast.
"""

import os

from modelreg import errors as _errors
from modelreg.errors import *  # noqa: F403  (the error classes are part of the public API)
from modelreg.errors import ModelregError, VerificationFailed  # noqa: F401
from modelreg.records import Commit, VersionRef  # noqa: F401

__all__ = ["__version__", "seal", "connect", "commit", "BackgroundCommitter", "Commit", "VersionRef",  # noqa: F405
           *sorted(n for n, v in vars(_errors).items() if isinstance(v, type) and issubclass(v, Exception))]


def seal(path: str | os.PathLike, *, follow_symlinks: bool = False):
    """Seal a model: a safetensors file, or a directory of shards and other files.

    Args:
        path: a `.safetensors` file or a model directory. Files are read, never loaded as code.
        follow_symlinks: follow symbolic links in a directory (a Hugging Face cache snapshot).

    Returns:
        A `SealedModel`: `.root` (0x-hex weights root), `.tensor_count`, `.files_root` (None for
        a single file), `.tensors` (the tensors tree: `.root`, and `.leaves`, each with name,
        dtype, shape and sha256) and `.files` (the files tree, its leaves path, size and sha256),
        None for a single file.

    Example:
        >>> sealed = modelreg.seal("checkpoint-500.safetensors")
        >>> sealed.root
        '0x...'
        >>> [(leaf.name, leaf.dtype, leaf.shape) for leaf in sealed.tensors.leaves]
        [('w', 'F32', (4, 4))]
    """
    from modelreg.formats.model import seal_model

    return seal_model(path, follow_symlinks=follow_symlinks)


def connect(home: str | os.PathLike | None = None, *, write: bool = True, **settings):
    """Connect to a registry as configured: the chain (the embedded devnet, started on demand,
    unless `rpc_url` is set), the signer, the contract and IPFS.

    Args:
        home: the data directory (default `$MODELREG_HOME`, else `~/.modelreg`); its
            config.toml and the `MODELREG_*` environment variables apply, then `settings`.
        write: False for read-only use: no signer is needed.
        settings: any of rpc_url, chain_id, registry, signer, dev_account, keystore, key_env,
            ipfs_api, profile (the CLI flags of the same names).

    Returns:
        A `Registry` with `commit(path, model, ...)`, `verify(target, model, ...)` and
        `history(model)`.

    Example:
        >>> registry = modelreg.connect()  # $MODELREG_HOME's devnet, started on demand
        >>> registry.chain_info()["chain_id"]
        1337

        With a node of your own: `modelreg.connect(rpc_url="http://127.0.0.1:8545", signer="env")`.
    """
    from modelreg.service.connect import open_registry

    return open_registry(home, write=write, **settings)


def commit(path: str | os.PathLike, model: str, *, home: str | os.PathLike | None = None, **kwargs) -> Commit:
    """Commit a model, a safetensors file or a model directory, as the next version of `model` on
    the configured registry.

    A shorthand for `modelreg.connect(home).commit(path, model, **kwargs)`; see `Registry.commit`
    for parent, dataset, step, metrics, config, note, follow_symlinks and code_revision.

    Example:
        >>> modelreg.commit("checkpoint-500.safetensors", "my-gpt").version
        1
    """
    return connect(home).commit(path, model, **kwargs)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str):
    # Loaded on first use, like the submodules, so that `import modelreg` stays fast.
    if name == "__version__":  # importlib.metadata costs 30 ms: `modelreg --help` does not pay it
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("modelreg")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            return "0+unknown"
    if name == "BackgroundCommitter":
        from modelreg.service.background import BackgroundCommitter

        return BackgroundCommitter
    raise AttributeError(f"module 'modelreg' has no attribute {name!r}")
