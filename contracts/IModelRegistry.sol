// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title IModelRegistry
 * @notice The interface of modelreg's registry of ML model versions, version 3 ({version}).
 * A client checks {version} before it uses an address, so a contract of another shape is
 * refused by name instead of answering garbage. Version 2 (contracts/v2/) stored a slot per
 * version; version 3 keeps one accumulator per model, so no call but a first registration
 * creates storage that grows with use.
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
    /// when it has none).
    struct VersionContent {
        bytes32 weightsRoot;
        uint256 tensorCount;
        bytes32 filesRoot;
    }

    /// @notice A dataset record as a commit names it: its id (0: none), root and registrant.
    /// The contract checks the three against the record {registerDataset} stored.
    struct DatasetRef {
        uint256 id;
        bytes32 root;
        address registrant;
    }

    /// @notice Everything a version is, as its {VersionCommitted} event tells it and as its
    /// accumulator leaf hashes it (`keccak256(abi.encode(modelId, version, record))`).
    struct VersionRecord {
        VersionContent content;
        DatasetRef dataset;
        uint256 parentModel;
        uint256 parentVersion;
        bytes32 manifestCidHash; // keccak256 of the manifest CID's bytes
        address committer;
    }

    /// @notice A proof that `record` is version `version` of model `modelId`: the model's name
    /// hash (where its accumulator lives), every peak of its Merkle Mountain Range, and the
    /// path from the version's leaf up to its peak (siblings from the leaf upwards).
    struct VersionProof {
        uint256 modelId;
        bytes32 nameHash;
        uint256 version;
        VersionRecord record;
        bytes32[] peaks;
        bytes32[] path;
    }

    /// @notice A model as returned by {getModel}: what storage holds. The name and metadata
    /// are in {ModelRegistered}. `epoch` counts ownership changes: maintainers added under an
    /// earlier epoch have no rights.
    struct ModelInfo {
        address owner;
        address pendingOwner;
        uint256 versionCount;
        uint256 epoch;
    }

    /// @notice Model `modelId` named `name` (`nameHash` is keccak256 of its bytes) was
    /// registered by `owner`.
    event ModelRegistered(
        uint256 indexed modelId, bytes32 indexed nameHash, address indexed owner, string name, string metadata
    );
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
    /// @notice Version `version` of model `modelId` was committed. The event is the only full
    /// record of it; the model's accumulator holds its hash.
    event VersionCommitted(
        uint256 indexed modelId,
        uint256 indexed version,
        bytes32 indexed weightsRoot,
        uint256 tensorCount,
        bytes32 filesRoot,
        uint256 datasetId,
        bytes32 datasetRoot,
        address datasetRegistrant,
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
    /// @notice A model named `name` already exists.
    error ModelNameTaken(string name);
    /// @notice `name` is not 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter, with no
    /// `--` and no trailing `-`.
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
    /// @notice No dataset has id `datasetId` with the root and registrant given.
    error DatasetNotFound(uint256 datasetId);
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
    /// @notice The record given is not version `version` of `modelId`: its proof does not lead
    /// to the model's accumulator.
    error ContentMismatch(uint256 modelId, uint256 version);
    /// @notice The peaks given are not those of model `modelId`'s accumulator now (another
    /// commit came first, or they were built wrong): rebuild them from the events and retry.
    error AccumulatorMismatch(uint256 modelId);
    /// @notice A multiproof must prove at least one leaf.
    error EmptyMultiproof();

    /// @notice The interface version this contract implements: 3.
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

    /// @notice Append a version, given the model's accumulator peaks now.
    function commitVersion(
        uint256 modelId,
        bytes32 nameHash,
        VersionContent calldata content,
        DatasetRef calldata dataset,
        uint256 parentModel,
        uint256 parentVersion,
        string calldata manifestCid,
        bytes32[] calldata peaks
    ) external returns (uint256 version);
    /// @notice Revoke a proven version: the owner any, a maintainer only its own; nothing is deleted.
    function revokeVersion(VersionProof calldata proof, string calldata reason, uint256 replacement) external;

    /// @notice The number of models; ids run from 1 to this.
    function modelCount() external view returns (uint256);
    /// @notice The number of dataset records; ids run from 1 to this.
    function datasetCount() external view returns (uint256);
    /// @notice What storage holds of a model.
    function getModel(uint256 modelId) external view returns (ModelInfo memory);
    /// @notice Whether `account` is a maintainer of the model in its current epoch.
    function isMaintainer(uint256 modelId, address account) external view returns (bool);
    /// @notice The accumulator of the model named by `nameHash`, or 0 if no model has that name.
    function accumulatorOf(bytes32 nameHash) external view returns (bytes32);
    /// @notice The id of `registrant`'s record of dataset `root`, or 0.
    function datasetIdOf(bytes32 root, address registrant) external view returns (uint256);
    /// @notice The number of versions of a model.
    function versionCount(uint256 modelId) external view returns (uint256);
    /// @notice Whether a version is revoked.
    function isRevoked(uint256 modelId, uint256 version) external view returns (bool);

    /// @notice Whether `proof` places tensor `leaf` in the weights tree of the proven version.
    function verifyTensor(VersionProof calldata version, TensorLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);
    /// @notice Whether a non-empty multiproof places every tensor of `leaves` in the proven version's weights.
    function verifyTensors(
        VersionProof calldata version,
        TensorLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool);
    /// @notice Whether `proof` places file `leaf` in the proven version's files tree.
    function verifyFile(VersionProof calldata version, FileLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);
}
