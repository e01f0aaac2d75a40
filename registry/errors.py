"""The exception tree: one root, subclasses named noun-then-problem."""


class ModelregError(Exception):
    """Root of every error modelreg raises on purpose. The CLI prints it as one `Error:` line."""

    exit_code = 2

    def __init__(self, message: str = "", **context):
        """`context` holds the names a hint may need (`model="gpt"`): facts, never advice."""
        super().__init__(message)
        self.context = context


class VerificationFailed(ModelregError):
    """The thing checked is not what the record says. Exit code 1, distinct from usage errors."""

    exit_code = 1


# --- input -----------------------------------------------------------------
class InputInvalid(ModelregError):
    """A value the user gave (a path, a flag, a name) cannot be used."""


class ConfigInvalid(ModelregError):
    """The configuration file or environment holds a value that cannot be used."""


class CheckpointInvalid(InputInvalid):
    """A file is not a well-formed weights file (safetensors or GGUF)."""


class DatasetInvalid(InputInvalid):
    """A dataset directory or manifest cannot be sealed or trusted."""


class ModelInvalid(InputInvalid):
    """A model directory cannot be sealed: no weights, a lying index, a special file, a clash of names."""


class SymlinkRefused(ModelInvalid):
    """A model directory (or any directory added to IPFS) holds a symbolic link, and following
    links was not asked for."""


class ManifestInvalid(InputInvalid):
    """A manifest does not parse, names an unknown format, or disagrees with itself."""


# --- verification ------------------------------------------------------------
class RootMismatch(VerificationFailed):
    """A recomputed Merkle root differs from the recorded one."""


class ProofInvalid(VerificationFailed):
    """A Merkle proof does not lead to the expected root."""


class DatasetTampered(VerificationFailed):
    """A dataset file differs from its manifest entry."""


class ReplayUnavailable(ModelregError):
    """A version cannot be replayed here: no transcript, a missing input, a CPU without the recorded code path."""


# --- IPFS --------------------------------------------------------------------
class CidInvalid(InputInvalid):
    """A string is not a CID this tool understands."""


class BlockNotFound(ModelregError):
    """A block the DAG needs is not in the store."""


class PathNotFound(ModelregError):
    """A path inside a UnixFS directory names no entry."""


class BlockCorrupted(VerificationFailed):
    """A stored block's bytes do not hash to its CID."""


class CarInvalid(InputInvalid):
    """A CAR file is malformed, or holds blocks that do not match their CIDs."""


class CidMismatch(ModelregError):
    """A remote IPFS node returned a CID other than the one computed locally."""


class IpfsUnavailable(ModelregError):
    """The IPFS daemon cannot be reached or answers garbage."""


# --- chain -------------------------------------------------------------------
class ChainUnavailable(ModelregError):
    """The JSON-RPC endpoint cannot be reached."""


class ChainIdMismatch(ModelregError):
    """The endpoint serves another chain than the one configured."""


class ContractNotDeployed(ModelregError):
    """No ModelRegistry is recorded, or none has code, on this chain."""


class DeploymentNotRecorded(ContractNotDeployed):
    """The data directory records no ModelRegistry for this chain (one may still exist there)."""


class DeploymentExists(ModelregError):
    """A ModelRegistry with code is already recorded for this chain; deploying would replace it."""


class ContractIncompatible(ModelregError):
    """The contract at the address is not a ModelRegistry of the interface version this client speaks."""


class TransactionFailed(ModelregError):
    """A transaction reverted or could not be sent."""


class InsufficientFunds(TransactionFailed):
    """The signer cannot pay for the transaction."""


class SignerInvalid(ModelregError):
    """No usable signing key: a missing variable, a malformed key, a wrong keystore password."""


class ModelNotFound(InputInvalid):
    """No model with that name or id is registered."""


class ModelNameInvalid(InputInvalid):
    """A model name breaks the registry's rule (1 to 64 of a-z, 0-9, '-', starting with a letter)."""


class ModelNameTaken(InputInvalid):
    """Another model is already registered under that name."""


class DatasetNotFound(InputInvalid):
    """No dataset record with that id, or none of that root by the accounts that may be named."""


class VersionNotFound(InputInvalid):
    """The model has no version with that number."""


class AccessDenied(TransactionFailed):
    """The contract refused the caller (not the owner, not a maintainer)."""


class DuplicateRoot(TransactionFailed):
    """The same weights root is already committed to this model."""


class ParentNotFound(TransactionFailed):
    """The parent version named does not exist."""


# --- hostile registries (issue 20) ---------------------------------------------
class CapExceeded(ModelregError):
    """Something fetched or read is larger, deeper or slower than a cap allows; the cap is named."""


class RegistryCodeUnknown(ContractIncompatible):
    """The code at the registry address is not a released ModelRegistry (a proxy, or anything else)."""


# --- event index (issue 20b) ---------------------------------------------------
class IndexUnavailable(ModelregError):
    """The local event index (SQLite, under the data directory) cannot be read or written."""


# --- issue22: ModelRegistry v3 ----------------------------------------------------------------

class AccumulatorMismatch(TransactionFailed):
    """A model's on-chain accumulator moved before a commit landed (another commit came first),
    or its events do not hash to it."""


# --- outside data, shared stores, full disks (issue 19) ------------------------------------
class JsonInvalid(InputInvalid, ValueError):
    """JSON from outside this process (a body, an answer, a manifest, a file) does not parse."""


class JsonTooDeep(JsonInvalid):
    """Outside JSON nests arrays or objects deeper than the parser allows."""


class JsonTooLarge(JsonInvalid):
    """Outside JSON is larger than the parser allows."""


class StoreInvalid(ModelregError):
    """A local store (the pin database, a block) is unreadable or inconsistent; `ipfs check` names it."""


class DiskFull(ModelregError):
    """No space left on the device while writing; the message names the path and the operation."""


class DirectoryInvalid(ManifestInvalid):
    """A UnixFS directory cannot be written out: a name no file system holds (a NUL, too long), two
    entries of one name, nesting too deep."""


# --- a Kubo daemon's RPC API: each way a call can fail (issue 23) -------------------------
class IpfsRefused(IpfsUnavailable):
    """Nothing listens at the IPFS API address: the connection was refused or cannot be made."""


class IpfsApiFileMissing(IpfsUnavailable):
    """`--ipfs-api` names a Kubo repo (IPFS_PATH) that has no `api` file: no daemon runs on it."""


class IpfsDropped(IpfsUnavailable):
    """The IPFS daemon closed the connection in the middle of a call (it stopped or was killed)."""


class IpfsTimeout(IpfsUnavailable):
    """An IPFS call did not finish within its deadline (the `timeout` setting)."""


class IpfsAnswerInvalid(IpfsUnavailable):
    """The IPFS API address answered, but not as Kubo's RPC API does."""


class IpfsCallRejected(IpfsUnavailable):
    """The Kubo daemon answered the call with an error of its own (its message is kept)."""


# --- derivations (modelreg derive) -------------------------------------------
class TransformUnknown(InputInvalid):
    """No derivation transform of that name is known to this modelreg."""


class TransformParamsInvalid(InputInvalid):
    """A transform's parameter is unknown, missing, or has a value the transform does not take."""


class SourceRevoked(InputInvalid):
    """The version to derive from was revoked: nothing is derived from it."""


class SourceUnverified(VerificationFailed):
    """The source copy to transform does not have the roots the chain commits for its version."""


class DerivationUnavailable(ModelregError):
    """The transform cannot run on this source (an ONNX export of something that is no modelreg GPT)."""


# issue24: the installable package ------------------------------------------------------------------


class ExtraNotInstalled(ModelregError):
    """A command or function needs an optional part of the install (an extra) that is missing."""


# -- testnet-grade chain operations (issue 28) ------------------------------------------------------


class RpcDeadlineExceeded(ChainUnavailable):
    """A JSON-RPC operation did not finish within its deadline (`timeout`), retries included."""


class NodeBehind(ChainUnavailable):
    """An endpoint's head is behind a head already seen from the chain: it lags or is stale."""


class FeeCapReached(TransactionFailed):
    """A stuck transaction needs a higher fee than the cap the user set (`max_fee_gwei`)."""


class NonceLockHeld(ModelregError):
    """Another process holds the signing key's nonce lock for longer than the deadline."""
