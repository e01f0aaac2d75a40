"""Configuration: a TOML file in the data directory, overridden by environment variables, then by flags.

The file never holds a secret. A private key is read from an environment variable whose *name*
the file records; a keystore password from an environment variable or a prompt.
"""

import os
import re
import urllib.parse
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from modelreg._atomic import write_atomic
from modelreg._files import read_small
from modelreg._json import nesting_depth
from modelreg.errors import ConfigInvalid
from modelreg.home import Home, HomeLike

SIGNER_KINDS = ("dev", "keystore", "env")
PROFILES = ("unixfs-v1-2025", "unixfs-v0-2015")  # the names of modelreg.ipfs.unixfs.PROFILES
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")  # the EIP-55 checksum is checked where web3 is loaded


@dataclass(frozen=True)
class Setting:
    """One setting, named once: the keyword of `modelreg.connect`, the CLI flag (`rpc_url` is
    `--rpc-url`), the environment variable, and where it lives in the file."""

    name: str
    section: str
    key: str
    env: str


# Flags override the environment, which overrides the file.
SETTINGS = (
    Setting("rpc_url", "chain", "rpc_url", "MODELREG_RPC_URL"),
    Setting("chain_id", "chain", "chain_id", "MODELREG_CHAIN_ID"),
    Setting("registry", "chain", "registry", "MODELREG_REGISTRY"),
    Setting("signer", "signer", "kind", "MODELREG_SIGNER"),
    Setting("dev_account", "signer", "dev_account", "MODELREG_DEV_ACCOUNT"),
    Setting("keystore", "signer", "keystore", "MODELREG_KEYSTORE"),
    Setting("key_env", "signer", "key_env", "MODELREG_KEY_ENV"),
    Setting("ipfs_api", "ipfs", "api", "MODELREG_IPFS_API"),
    Setting("profile", "ipfs", "profile", "MODELREG_IPFS_PROFILE"),
    Setting("ipfs_cache_mib", "ipfs", "cache_mib", "MODELREG_IPFS_CACHE_MIB"),
    Setting("timeout", "network", "timeout", "MODELREG_TIMEOUT"),
    Setting("confirmations", "chain", "confirmations", "MODELREG_CONFIRMATIONS"),
    Setting("max_fee_gwei", "chain", "max_fee_gwei", "MODELREG_MAX_FEE_GWEI"),
    Setting("resend_after", "chain", "resend_after", "MODELREG_RESEND_AFTER"),
)
FINALITY_TAGS = ("safe", "finalized")
# Blocks deep before a commit is taken as final on a chain that is not a local devnet: post-merge
# testnets (Sepolia, Hoodi) reorg one or two blocks when a proposal is late, almost never more; three
# blocks (36 s at 12 s a block) cover those, where `finalized` (about 13 minutes) is for certainty.
PUBLIC_CHAIN_CONFIRMATIONS = 3


def overrides_of(values: dict[str, object]) -> dict[tuple[str, str], object]:
    """`{"rpc_url": ...}` (keywords or flags by setting name) -> `{("chain", "rpc_url"): ...}`."""
    by_name = {s.name: s for s in SETTINGS}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ConfigInvalid(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return {(by_name[n].section, by_name[n].key): v for n, v in values.items()}


@dataclass(frozen=True)
class ChainConfig:
    rpc_url: str = ""  # empty: the embedded devnet, started on demand
    chain_id: int = 0  # 0: accept whatever the endpoint serves; otherwise it must match
    registry: str = ""  # empty: the ModelRegistry recorded in deployments.json for the chain
    # The settings below are for public networks (see modelreg.chain.endpoints and .sending).
    # N blocks deep, "safe" or "finalized"; "auto": 0 on a local devnet (the embedded one, anvil,
    # geth --dev), which never reorgs by itself, else PUBLIC_CHAIN_CONFIRMATIONS.
    confirmations: str = "auto"
    max_fee_gwei: float = 0.0  # cap on maxFeePerGas when a stuck transaction is re-sent; 0: no cap
    resend_after: float = 30.0  # seconds pending before a fee bump: two or three 12 s blocks

    @property
    def rpc_urls(self) -> list[str]:
        """The endpoints, first to last: `rpc_url` holds them separated by spaces (--rpc-url given
        several times, or a list in the file)."""
        return self.rpc_url.split()


@dataclass(frozen=True)
class SignerConfig:
    kind: str = "dev"  # dev: a devnet dev account; keystore: an encrypted file; env: a key in a variable
    dev_account: int = 0
    keystore: str = ""
    password_env: str = "MODELREG_KEYSTORE_PASSWORD"  # unset: the password is prompted for
    key_env: str = "MODELREG_PRIVATE_KEY"


@dataclass(frozen=True)
class IpfsConfig:
    api: str = ""  # empty: the embedded blockstore under the data directory
    profile: str = "unixfs-v1-2025"
    # Content fetched from a Kubo daemon to verify or read is cached unpinned in the data directory;
    # past this size its unpinned blocks are dropped. 1 GiB holds a small model's shards.
    cache_mib: int = 1024


@dataclass(frozen=True)
class NetworkConfig:
    # An overall deadline per network operation (one JSON-RPC call with its retries and fallbacks, one
    # upload, one fetch), in seconds: long enough for a multi-GiB shard through a local daemon, short
    # enough that a hung one ends.
    timeout: int = 120


@dataclass(frozen=True)
class Config:
    chain: ChainConfig = field(default_factory=ChainConfig)
    signer: SignerConfig = field(default_factory=SignerConfig)
    ipfs: IpfsConfig = field(default_factory=IpfsConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict[tuple[str, str], object]) -> "Config":
        """A copy with (section, key) -> value applied; values of None are ignored."""
        sections = {name: getattr(self, name) for name in ("chain", "signer", "ipfs", "network")}
        for (section, key), value in overrides.items():
            if value is None:
                continue
            current = sections[section]
            sections[section] = replace(current, **{key: _coerce(section, key, value, current)})
        return _validated(Config(**sections))

    def public_view(self) -> dict:
        """What `config show` prints: the settings, and where secrets come from without their values."""
        view = self.to_dict()
        view["chain"]["rpc_url"] = self.chain.rpc_url or "(embedded devnet)"
        view["chain"]["chain_id"] = self.chain.chain_id or "(any: whatever the endpoint serves)"
        view["chain"]["registry"] = self.chain.registry or "(the one recorded in deployments.json)"
        view["ipfs"]["api"] = self.ipfs.api or "(embedded blockstore)"
        signer = view["signer"]
        if self.signer.kind == "env":
            present = "set" if os.environ.get(self.signer.key_env) else "NOT SET"
            signer["key"] = f"from ${self.signer.key_env} ({present})"
        if self.signer.kind == "keystore":
            source = self.signer.password_env if os.environ.get(self.signer.password_env) else None
            signer["password"] = f"from ${source}" if source else "prompted"
        return view


def load_config(home: HomeLike, flags: dict[tuple[str, str], object] | None = None,
                environ: dict | None = None) -> Config:
    """The effective configuration: file, then environment, then flags."""
    path = Home.of(home).config
    config = Config()
    if path.exists() or path.is_symlink():
        raw = _read_toml(path)
        config = _applied(config, _flatten(raw, path), f"{path}: ")
    environ = os.environ if environ is None else environ
    for setting in SETTINGS:
        if environ.get(setting.env):
            config = _applied(config, {(setting.section, setting.key): environ[setting.env]}, f"${setting.env}: ")
    return config.with_overrides(flags or {})


MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few hundred bytes
MAX_CONFIG_NESTING = 16  # the file nests 2 levels ([chain] rpc_url = ...)


def _read_toml(path: Path) -> dict:
    """The parsed file; ConfigInvalid naming it when it is special, huge, nested deep or no TOML."""
    data = read_small(path, MAX_CONFIG_BYTES, "configuration file", ConfigInvalid)
    depth = nesting_depth(data)  # brackets and braces, as in JSON; tomllib recurses per level
    if depth > MAX_CONFIG_NESTING:
        raise ConfigInvalid(f"{path} nests {depth} levels deep; the limit is {MAX_CONFIG_NESTING}")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigInvalid(f"{path} is not valid TOML: {e}") from None


def _applied(config: Config, overrides: dict, source: str) -> Config:
    """`config.with_overrides`, its errors naming where the bad value was written."""
    try:
        return config.with_overrides(overrides)
    except ConfigInvalid as e:
        raise ConfigInvalid(f"{source}{e}") from None


def save_config(home: HomeLike, config: Config) -> Path:
    """Write the file atomically, so a crash never leaves half a config."""
    path = Home.of(home).config
    write_atomic(path, tomli_w.dumps(config.to_dict()))
    return path


def _flatten(raw: dict, path: Path) -> dict[tuple[str, str], object]:
    known = {"chain": ChainConfig, "signer": SignerConfig, "ipfs": IpfsConfig, "network": NetworkConfig}
    flat = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigInvalid(f"{path}: '{section}' is outside a section; put it under [chain], "
                                "[signer], [ipfs] or [network]")
        if section not in known:
            raise ConfigInvalid(f"{path}: unknown section [{section}] (known: chain, signer, ipfs, network)")
        fields = known[section].__dataclass_fields__
        for key, value in values.items():
            if key not in fields:
                raise ConfigInvalid(f"{path}: unknown key '{key}' in [{section}]")
            flat[(section, key)] = value
    return flat


def _coerce(section: str, key: str, value, current):
    expected = type(getattr(current, key))
    if (section, key) == ("chain", "rpc_url") and isinstance(value, list | tuple):
        value = " ".join(str(v) for v in value)  # a list in the file, or --rpc-url given several times
    if (section, key) == ("chain", "confirmations") and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if expected is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigInvalid(f"{section}.{key} must be a number, got {value!r}") from None
    if expected is int and isinstance(value, bool):  # TOML's true is no account index
        raise ConfigInvalid(f"{section}.{key} must be an integer, got {value!r}")
    if expected is int and not isinstance(value, int):
        try:
            return int(str(value), 0)
        except ValueError:
            raise ConfigInvalid(f"{section}.{key} must be an integer, got {value!r}") from None
    if expected is str and not isinstance(value, str):
        raise ConfigInvalid(f"{section}.{key} must be a string, got {value!r}")
    return value


def _validated(config: Config) -> Config:
    if config.signer.kind not in SIGNER_KINDS:
        raise ConfigInvalid(f"signer.kind must be one of {', '.join(SIGNER_KINDS)}, got {config.signer.kind!r}")
    if config.ipfs.profile not in PROFILES:
        raise ConfigInvalid(f"ipfs.profile must be one of {', '.join(PROFILES)}, got {config.ipfs.profile!r}")
    if config.network.timeout < 1:
        raise ConfigInvalid(f"network.timeout must be at least 1 second, got {config.network.timeout}")
    if config.ipfs.cache_mib < 0:
        raise ConfigInvalid(f"ipfs.cache_mib must be 0 or more, got {config.ipfs.cache_mib}")
    registry = config.chain.registry
    if registry and not _ADDRESS.fullmatch(registry):
        raise ConfigInvalid(f"chain.registry must be a contract address (0x and 40 hex digits), got {registry!r}")
    for rpc_url in config.chain.rpc_urls:
        if not rpc_url.startswith(("http://", "https://")):
            raise ConfigInvalid(f"chain.rpc_url must be an http(s):// URL, got {rpc_url!r}")
        _check_url(rpc_url, "chain.rpc_url")
    confirmations = config.chain.confirmations
    if not (confirmations in ("auto", *FINALITY_TAGS) or confirmations.isdigit()):
        raise ConfigInvalid(f"chain.confirmations must be a number of blocks, safe, finalized or auto, "
                            f"got {confirmations!r}")
    if config.chain.max_fee_gwei < 0 or config.chain.resend_after < 0:
        raise ConfigInvalid("chain.max_fee_gwei and chain.resend_after cannot be negative")
    return config


def _check_url(url: str, name: str) -> None:
    """ConfigInvalid for a URL that only fails when used: a malformed IPv6 host, a bad port, no host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
        if not parts.hostname:
            raise ValueError("it names no host")
    except ValueError as e:
        raise ConfigInvalid(f"{name} {url!r} is not a valid URL: {e}") from None
