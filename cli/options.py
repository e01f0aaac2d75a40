"""Options and output helpers shared by every command."""

import functools
import json

import click

from modelreg.home import resolve_home
from modelreg.service.config import PROFILES, SETTINGS, SIGNER_KINDS, load_config, overrides_of


def home_of(ctx: click.Context | None = None):
    """The resolved data directory for this invocation (--home, $MODELREG_HOME, ~/.modelreg)."""
    from modelreg.errors import ConfigInvalid

    ctx = ctx or click.get_current_context()
    try:
        return resolve_home((ctx.find_root().obj or {}).get("home_flag"))
    except ConfigInvalid as e:
        raise ConfigInvalid(f"{e}; pass --home (or set MODELREG_HOME to) a directory you can write") from None


# Versions count from 1; the contract stores them as uint32.
VERSION = click.IntRange(1, 2**32 - 1)
UINT256 = 2**256 - 1

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs instead of text.")


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def console():
    """Rich output; piped to a file or a program it is 120 columns wide, not rich's default 80."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=120)


def short(value: str | None) -> str:
    """A hash or CID cut for a table a person reads: both ends kept; --json prints it whole."""
    if not value:
        return "-"
    return value if len(value) <= 16 else f"{value[:8]}…{value[-4:]}"


follow_symlinks_option = click.option(
    "--follow-symlinks", is_flag=True,
    help="Follow symbolic links in a directory (a Hugging Face cache snapshot is made of them).")


# Each setting's flag, by setting name (modelreg.service.config.SETTINGS); the signer's are for writes.
_FLAGS = {
    "rpc_url": click.option("--rpc-url", multiple=True,
                            help="EVM JSON-RPC endpoint; give it again for fallbacks, tried in order "
                                 "[env MODELREG_RPC_URL, space-separated; default: the embedded devnet]."),
    "confirmations": click.option("--confirmations", metavar="N|safe|finalized",
                                  help="Blocks deep before a version counts as final, or a finality tag [env "
                                       "MODELREG_CONFIRMATIONS; default 0 on a local devnet, else 3]."),
    "max_fee_gwei": click.option("--max-fee-gwei", type=click.FloatRange(min=0),
                                 help="Cap on the max fee per gas when a stuck transaction is re-sent with a "
                                      "higher fee [env MODELREG_MAX_FEE_GWEI; default: no cap]."),
    "resend_after": click.option("--resend-after", type=click.FloatRange(min=0), metavar="SECONDS",
                                 help="Seconds a transaction may stay pending before it is re-sent with a "
                                      "higher fee [env MODELREG_RESEND_AFTER; default 30]."),
    "chain_id": click.option("--chain-id", type=click.IntRange(1, UINT256), help="Refuse an endpoint serving another chain "
                                                          "[env MODELREG_CHAIN_ID]."),
    "registry": click.option("--registry", metavar="ADDRESS",
                             help="ModelRegistry contract to use [env MODELREG_REGISTRY; default: the one recorded "
                                  "in the data directory for the chain]. Reading needs only this and --rpc-url."),
    "ipfs_api": click.option("--ipfs-api", metavar="URL|IPFS_PATH",
                             help="Kubo RPC API: a URL, a multiaddr, or the daemon's repo directory (IPFS_PATH, "
                                  "whose api file is read on each call) [env MODELREG_IPFS_API; default: the "
                                  "embedded blockstore]."),
    "ipfs_cache_mib": click.option("--ipfs-cache-mib", type=click.IntRange(0), metavar="MIB",
                                   help="Keep content fetched from Kubo to verify or read, unpinned, up to this "
                                        "size [env MODELREG_IPFS_CACHE_MIB; default 1024]."),
    "timeout": click.option("--timeout", type=click.IntRange(1), metavar="SECONDS",
                            help="Deadline of each network operation: a JSON-RPC call with its retries and "
                                 "fallbacks, an IPFS upload or fetch [env MODELREG_TIMEOUT; default 120]."),
    "profile": click.option("--profile", type=click.Choice(PROFILES),
                            help="UnixFS profile for new IPFS files [env MODELREG_IPFS_PROFILE]."),
    "signer": click.option("--signer", type=click.Choice(SIGNER_KINDS),
                           help="Where the signing key comes from [env MODELREG_SIGNER; default dev]."),
    "dev_account": click.option("--dev-account", type=click.IntRange(0), help="Index of the devnet dev account to sign with."),
    "keystore": click.option("--keystore", type=click.Path(dir_okay=False),
                             help="Encrypted keystore file (signer keystore); password from "
                                  "$MODELREG_KEYSTORE_PASSWORD or a prompt."),
    "key_env": click.option("--key-env", help="Name of the variable holding the private key (signer env)."),
}
_SIGNER_FLAGS = ("signer", "dev_account", "keystore", "key_env", "max_fee_gwei", "resend_after")


def _settings_options(names):
    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            # An option given no times (a repeatable one's empty tuple) leaves the setting as it is.
            flags = overrides_of({name: None if (v := kwargs.pop(name)) == () else v for name in names})
            click.get_current_context().meta["modelreg.flags"] = flags
            return command(*args, **kwargs)

        for name in reversed(names):
            wrapper = _FLAGS[name](wrapper)
        return wrapper

    return decorate


# Commands that write: every setting, the signer's included.
connection_options = _settings_options([s.name for s in SETTINGS])
# Commands that only read: the chain and IPFS, no signer.
read_options = _settings_options([s.name for s in SETTINGS if s.name not in _SIGNER_FLAGS])


def config_of(ctx: click.Context | None = None):
    """The effective configuration: the file in the data directory, the environment, then flags."""
    ctx = ctx or click.get_current_context()
    return load_config(home_of(ctx), flags=ctx.meta.get("modelreg.flags", {}))


def open_ipfs_store(ctx: click.Context | None = None):
    """The IPFS store the configuration names: the embedded one in the data directory, or Kubo."""
    from modelreg.ipfs.store import open_ipfs

    ctx = ctx or click.get_current_context()
    config = config_of(ctx)
    ipfs = config.ipfs
    return open_ipfs(home_of(ctx), api=ipfs.api or None, profile=ipfs.profile,
                     timeout=config.network.timeout, cache_bytes=ipfs.cache_mib << 20)


def open_registry(ctx: click.Context | None = None, *, write: bool = False):
    """Connect to the configured chain and IPFS (starting the embedded devnet if needed)."""
    from modelreg.errors import ContractNotDeployed, DeploymentNotRecorded
    from modelreg.service.connect import connect

    ctx = ctx or click.get_current_context()
    config = config_of(ctx)
    try:
        return connect(home_of(ctx), config, write=write, notify=lambda message: click.echo(message, err=True))
    except DeploymentNotRecorded:
        raise  # the CLI's hint says what to do
    except ContractNotDeployed as e:
        if not config.chain.registry:
            raise
        raise ContractNotDeployed(f"{e}; check --registry (or MODELREG_REGISTRY) and --rpc-url") from None


def depth_text(depth: dict) -> str:
    """`N/M confirmations` (Registry.depth), or how the block stands against a finality tag."""
    if isinstance(depth["required"], str):
        state = depth["required"] if depth["final"] else f"not yet {depth['required']}"
        return f"{depth['confirmations']} confirmations, {state}"
    return f"{depth['confirmations']}/{depth['required']} confirmations"
