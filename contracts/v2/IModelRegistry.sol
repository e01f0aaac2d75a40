// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title IModelRegistry
 * @notice The interface of modelreg's registry of ML model versions, version 2 ({version}).
 * A client checks {version} before it uses an address, so a contract of another shape is
 * refused by name instead of answering garbage.
 */
interface IModelRegistry {
    /// @notice The values of one leaf of a `modelreg-tensors-v1` tree: a tensor's name, its
    /// safetensors dtype code (`F32`, `BF16`, ...), its shape and the sha256 of its stored bytes.
    struct TensorLeaf {
        string name;
        string dtype;
        uint256[] shape;
        bytes32 sha256;
    }

    /// @notice The values of one leaf of a `modelreg-files-v1` tree: a relative POSIX path,
    /// the file's size in bytes and the sha256 of its bytes.
    struct FileLeaf {
        string path;
        uint256 size;
        bytes32 sha256;
    }

    /// @notice What a version is: its tensors (root and count) and its other files (root, or 0
    /// when it has none). The contract stores a hash of these three values, {contentHash}.
    struct VersionContent {
        bytes32 weightsRoot;
        uint256 tensorCount;
        bytes32 filesRoot;
    }

    /// @notice A model as returned by {getModel}. `epoch` counts ownership changes: maintainers
    /// added under an earlier epoch have no rights.
    struct ModelInfo {
        string name;
        string metadata;
        address owner;
        address pendingOwner;
        uint256 versionCount;
        uint256 epoch;
    }

    /// @notice A version as returned by {getVersion}. The roots themselves, the parent and the
    /// manifest CID are in the {VersionCommitted} event; `contentHash` binds the roots.
    struct VersionInfo {
        bytes32 contentHash;
        uint256 tensorCount;
        uint256 datasetId;
        address committer;
        bool revoked;
        address revoker;
        uint256 replacement;
        string revocationReason;
    }

    /// @notice Model `modelId` named `name` was registered by `owner`.
    event ModelRegistered(uint256 indexed modelId, string name, address indexed owner, string metadata);
    /// @notice `account` may now commit versions of model `modelId`, and revoke its own.
    event MaintainerAdded(uint256 indexed modelId, address indexed account);
    /// @notice `account` may no longer commit or revoke versions of model `modelId`.
    event MaintainerRemoved(uint256 indexed modelId, address indexed account);
    /// @notice Every maintainer of `modelId` lost its role: the model changed hands and is now
    /// in ownership epoch `epoch`.
    event MaintainersCleared(uint256 indexed modelId, uint256 epoch);
    /// @notice The owner of `modelId` offered it to `newOwner` (zero: the offer was withdrawn).
    event OwnershipTransferStarted(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice `newOwner` accepted model `modelId`.
    event OwnershipTransferred(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice `registrant` registered dataset `datasetId`: Merkle root `root` (tree
    /// `modelreg-files-v1`) and its manifest's CID.
    event DatasetRegistered(
        uint256 indexed datasetId, bytes32 indexed root, address indexed registrant, string manifestCid
    );
    /// @notice Version `version` of model `modelId` was committed. This event is the only record
    /// of the roots' values (storage keeps their hash), the parent and `manifestCid`; block
    /// number and time are those of the log.
    event VersionCommitted(
        uint256 indexed modelId,
        uint256 indexed version,
        bytes32 indexed weightsRoot,
        uint256 tensorCount,
        bytes32 filesRoot,
        uint256 datasetId,
        bytes32 datasetRoot,
        uint256 parentModel,
        uint256 parentVersion,
        string manifestCid,
        address committer
    );
    /// @notice Version `version` of model `modelId` was revoked; `replacement` is 0 when none was named.
    event VersionRevoked(
        uint256 indexed modelId, uint256 indexed version, string reason, uint256 replacement, address indexed revoker
    );

    /// @notice No model has id `modelId`.
    error ModelNotFound(uint256 modelId);
    /// @notice A model named `name` already exists, with id `modelId`.
    error ModelNameTaken(string name, uint256 modelId);
    /// @notice `name` is not 1 to 64 of the characters `a-z`, `0-9`, `.`, `_` and `-`.
    error ModelNameInvalid(string name);
    /// @notice The string argument `field` is `length` bytes long; at most `maxLength` are allowed.
    error StringTooLong(string field, uint256 length, uint256 maxLength);
    /// @notice Only the owner of `modelId` may do this; `account` is not.
    error NotModelOwner(uint256 modelId, address account);
    /// @notice Only the owner or a maintainer of `modelId` may do this; `account` is neither.
    error NotOwnerOrMaintainer(uint256 modelId, address account);
    /// @notice A maintainer may revoke only the versions it committed; `account` did not commit
    /// version `version` of `modelId`.
    error NotCommitter(uint256 modelId, uint256 version, address account);
    /// @notice Only the pending owner of `modelId` may accept it; `account` is not.
    error NotPendingOwner(uint256 modelId, address account);
    /// @notice `account` is already a maintainer of `modelId`.
    error AlreadyMaintainer(uint256 modelId, address account);
    /// @notice `account` is not a maintainer of `modelId`.
    error NotMaintainer(uint256 modelId, address account);
    /// @notice The zero address cannot hold a role.
    error ZeroAddress();
    /// @notice A Merkle root of zero is reserved to mean "none".
    error ZeroRoot();
    /// @notice A version has at least one tensor, and at most 2**32 - 1.
    error TensorCountInvalid(uint256 tensorCount);
    /// @notice No dataset has id `datasetId`.
    error DatasetNotFound(uint256 datasetId);
    /// @notice Model `modelId` has version `version` with the same content, not revoked.
    error DuplicateVersion(uint256 modelId, uint256 version, bytes32 weightsRoot);
    /// @notice The parent `parentModel`/`parentVersion` does not exist.
    error ParentNotFound(uint256 parentModel, uint256 parentVersion);
    /// @notice Model `modelId` has no version `version`.
    error VersionNotFound(uint256 modelId, uint256 version);
    /// @notice Version `version` of `modelId` is already revoked.
    error VersionAlreadyRevoked(uint256 modelId, uint256 version);
    /// @notice A version cannot replace itself.
    error SelfReplacement(uint256 modelId, uint256 version);
    /// @notice The replacement `replacement` of `modelId` is revoked itself.
    error ReplacementRevoked(uint256 modelId, uint256 replacement);
    /// @notice The roots given are not those committed for version `version` of `modelId`.
    error ContentMismatch(uint256 modelId, uint256 version);
    /// @notice A multiproof must prove at least one leaf.
    error EmptyMultiproof();

    /// @notice The interface version this contract implements: 2.
    function version() external pure returns (uint256);

    /// @notice Register a model under a canonical name; the caller owns it.
    function registerModel(string calldata name, string calldata metadata) external returns (uint256 modelId);
    /// @notice Let `account` commit versions and revoke its own, until removed or the model changes hands.
    function addMaintainer(uint256 modelId, address account) external;
    /// @notice Withdraw a maintainer role. Owner only.
    function removeMaintainer(uint256 modelId, address account) external;
    /// @notice Offer the model to `newOwner` (zero withdraws the offer). Owner only.
    function transferOwnership(uint256 modelId, address newOwner) external;
    /// @notice Take the model offered to the caller; starts a new epoch, clearing every maintainer.
    function acceptOwnership(uint256 modelId) external;

    /// @notice Record the caller's own record of dataset `root`; returns its id.
    function registerDataset(bytes32 root, string calldata manifestCid) external returns (uint256 datasetId);

    /// @notice Append a version: its content, the dataset id used, its parent and its manifest CID.
    function commitVersion(
        uint256 modelId,
        VersionContent calldata content,
        uint256 datasetId,
        uint256 parentModel,
        uint256 parentVersion,
        string calldata manifestCid
    ) external returns (uint256 version);
    /// @notice Revoke a version: the owner any, a maintainer only its own; nothing is deleted.
    function revokeVersion(uint256 modelId, uint256 version, string calldata reason, uint256 replacement) external;

    /// @notice The number of models; ids run from 1 to this.
    function modelCount() external view returns (uint256);
    /// @notice The id of the model named `name`, or 0.
    function modelIdByName(string calldata name) external view returns (uint256);
    /// @notice A model's name, metadata, owner, pending owner, version count and epoch.
    function getModel(uint256 modelId) external view returns (ModelInfo memory);
    /// @notice Whether `account` is a maintainer of the model in its current epoch.
    function isMaintainer(uint256 modelId, address account) external view returns (bool);
    /// @notice The number of dataset records; ids run from 1 to this.
    function datasetCount() external view returns (uint256);
    /// @notice The id of `registrant`'s record of dataset `root`, or 0.
    function datasetIdOf(bytes32 root, address registrant) external view returns (uint256);
    /// @notice A dataset record's root and registrant.
    function getDataset(uint256 datasetId) external view returns (bytes32 root, address registrant);
    /// @notice The number of versions of a model.
    function versionCount(uint256 modelId) external view returns (uint256);
    /// @notice What storage holds about a version, revoked or not.
    function getVersion(uint256 modelId, uint256 version) external view returns (VersionInfo memory);
    /// @notice The hash a version stores for `content`.
    function contentHash(VersionContent calldata content) external pure returns (bytes32);

    /// @notice Whether `proof` places tensor `leaf` in the version's weights tree.
    function verifyTensor(
        uint256 modelId,
        uint256 version,
        VersionContent calldata content,
        TensorLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool);
    /// @notice Whether a non-empty multiproof places every tensor of `leaves` in the version's weights tree.
    function verifyTensors(
        uint256 modelId,
        uint256 version,
        VersionContent calldata content,
        TensorLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool);
    /// @notice Whether `proof` places file `leaf` in the version's files tree.
    function verifyFile(
        uint256 modelId,
        uint256 version,
        VersionContent calldata content,
        FileLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool);
}
