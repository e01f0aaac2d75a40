// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * @title ModelRegistry
 * @notice An append-only registry of ML model versions. A version binds a model to the Merkle
 * root of its weights (tree format `modelreg-tensors-v1`), the root of its training data
 * (`modelreg-files-v1`), an optional parent version and the IPFS CID of its manifest.
 *
 * Every state change emits an event carrying everything needed to rebuild the history from
 * logs alone, so an auditor needs no trust in whoever runs the registry's front end.
 *
 * Ids start at 1 so that 0 can mean "none": model 0, version 0, dataset root 0.
 */
contract ModelRegistry {
    /// @notice The values of one leaf of a `modelreg-tensors-v1` tree: a tensor's name, its
    /// safetensors dtype code (`F32`, `BF16`, ...), its shape and the sha256 of its stored bytes.
    struct TensorLeaf {
        string name;
        string dtype;
        uint256[] shape;
        bytes32 sha256;
    }

    /// @notice A model as returned by {getModel}.
    struct ModelInfo {
        string name;
        string metadata;
        address owner;
        address pendingOwner;
        uint256 versionCount;
    }

    /// @notice A version as returned by {getVersion}. The manifest CID is not stored: it is in
    /// the {VersionCommitted} event, which is as permanent as storage and far cheaper.
    struct VersionInfo {
        bytes32 weightsRoot;
        bytes32 datasetRoot;
        uint256 parentModel;
        uint256 parentVersion;
        address committer;
        bool revoked;
        address revoker;
        uint256 replacement;
        string revocationReason;
    }

    struct Model {
        address owner; // never zero once registered: it marks that the model exists
        uint32 versionCount;
        address pendingOwner;
        string name;
        string metadata;
    }

    // One slot, written once per version. Keyed by (model, weights root), so the same slot
    // both records the version and refuses a second commit of the same root.
    struct Commit {
        address committer;
        uint32 datasetId;
        uint32 parentModel;
        uint32 parentVersion;
    }

    struct Revocation {
        address revoker;
        uint32 replacement;
        string reason;
    }

    // 32 bits: version references pack model ids; checked increments refuse any beyond.
    uint32 private _modelCount;
    mapping(uint256 modelId => Model) private _models;
    mapping(bytes32 nameHash => uint256 modelId) private _modelIdByName;
    mapping(uint256 modelId => mapping(address account => bool)) private _maintainers;

    bytes32[] private _datasetRoots; // dataset id i has root _datasetRoots[i - 1]
    mapping(bytes32 root => uint32 datasetId) private _datasetIds;

    mapping(uint256 modelId => mapping(uint256 version => bytes32 weightsRoot)) private _weightsRoots;
    mapping(uint256 modelId => mapping(bytes32 weightsRoot => Commit)) private _commits;
    mapping(uint256 modelId => mapping(uint256 version => Revocation)) private _revocations;

    /// @notice Model `modelId` named `name` was registered by `owner`.
    event ModelRegistered(uint256 indexed modelId, string name, address indexed owner, string metadata);
    /// @notice `account` may now commit and revoke versions of model `modelId`.
    event MaintainerAdded(uint256 indexed modelId, address indexed account);
    /// @notice `account` may no longer commit or revoke versions of model `modelId`.
    event MaintainerRemoved(uint256 indexed modelId, address indexed account);
    /// @notice The owner of `modelId` offered it to `newOwner` (zero: the offer was withdrawn).
    event OwnershipTransferStarted(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice `newOwner` accepted model `modelId`.
    event OwnershipTransferred(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice A dataset with Merkle root `root` (tree `modelreg-files-v1`) was registered.
    event DatasetRegistered(bytes32 indexed root, string manifestCid, address indexed registrant);
    /// @notice Version `version` of model `modelId` was committed. This event is the only
    /// record of `manifestCid`; block number and time are those of the log.
    event VersionCommitted(
        uint256 indexed modelId,
        uint256 indexed version,
        bytes32 indexed weightsRoot,
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
    /// @notice Model names cannot be empty.
    error EmptyModelName();
    /// @notice Only the owner of `modelId` may do this; `account` is not.
    error NotModelOwner(uint256 modelId, address account);
    /// @notice Only the owner or a maintainer of `modelId` may do this; `account` is neither.
    error NotOwnerOrMaintainer(uint256 modelId, address account);
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
    /// @notice The dataset root `root` must be registered with {registerDataset} first.
    error DatasetNotRegistered(bytes32 root);
    /// @notice Model `modelId` already has a version with weights root `weightsRoot`.
    error DuplicateWeightsRoot(uint256 modelId, bytes32 weightsRoot);
    /// @notice The parent `parentModel`/`parentVersion` does not exist.
    error ParentNotFound(uint256 parentModel, uint256 parentVersion);
    /// @notice Model `modelId` has no version `version`.
    error VersionNotFound(uint256 modelId, uint256 version);
    /// @notice Version `version` of `modelId` is already revoked.
    error VersionAlreadyRevoked(uint256 modelId, uint256 version);
    /// @notice A version cannot replace itself.
    error SelfReplacement(uint256 modelId, uint256 version);

    // ---------------------------------------------------------------- models

    /**
     * @notice Register a model named `name`; the caller becomes its owner.
     * @param name Unique, non-empty name; {modelIdByName} finds the model by it.
     * @param metadata Free text (for instance JSON) describing the model.
     * @return modelId The new model's id, counting from 1.
     */
    function registerModel(string calldata name, string calldata metadata) external returns (uint256 modelId) {
        if (bytes(name).length == 0) revert EmptyModelName();
        bytes32 nameHash = keccak256(bytes(name));
        uint256 existing = _modelIdByName[nameHash];
        if (existing != 0) revert ModelNameTaken(name, existing);
        modelId = ++_modelCount;
        _modelIdByName[nameHash] = modelId;
        Model storage m = _models[modelId];
        m.owner = msg.sender;
        m.name = name;
        m.metadata = metadata;
        emit ModelRegistered(modelId, name, msg.sender, metadata);
    }

    /**
     * @notice Let `account` commit and revoke versions of `modelId`. Owner only.
     * @dev A maintainer can commit any weights under the model's name: grant it only to keys
     * you would trust with the owner's signature on a release.
     */
    function addMaintainer(uint256 modelId, address account) external {
        _requireOwner(modelId);
        if (account == address(0)) revert ZeroAddress();
        if (_maintainers[modelId][account]) revert AlreadyMaintainer(modelId, account);
        _maintainers[modelId][account] = true;
        emit MaintainerAdded(modelId, account);
    }

    /// @notice Withdraw `account`'s maintainer role on `modelId`. Owner only. Its past commits stay.
    function removeMaintainer(uint256 modelId, address account) external {
        _requireOwner(modelId);
        if (!_maintainers[modelId][account]) revert NotMaintainer(modelId, account);
        _maintainers[modelId][account] = false;
        emit MaintainerRemoved(modelId, account);
    }

    /**
     * @notice Offer `modelId` to `newOwner`, who must call {acceptOwnership}. Owner only.
     * Offering to the zero address withdraws a pending offer.
     */
    function transferOwnership(uint256 modelId, address newOwner) external {
        _requireOwner(modelId);
        _models[modelId].pendingOwner = newOwner;
        emit OwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @notice Take ownership of `modelId`. Only the pending owner named by {transferOwnership}.
    function acceptOwnership(uint256 modelId) external {
        Model storage m = _existingModel(modelId);
        if (msg.sender != m.pendingOwner) revert NotPendingOwner(modelId, msg.sender);
        address previous = m.owner;
        m.owner = msg.sender;
        m.pendingOwner = address(0);
        emit OwnershipTransferred(modelId, previous, msg.sender);
    }

    // -------------------------------------------------------------- datasets

    /**
     * @notice Record a dataset by its Merkle root. Anyone may register one. Registering a root
     * again changes nothing and emits nothing: a root has one record, from its first registrant.
     * @param root The dataset's `modelreg-files-v1` root.
     * @param manifestCid IPFS CID of the dataset manifest; kept in the event only.
     * @return id The dataset's compact id, counting from 1.
     */
    function registerDataset(bytes32 root, string calldata manifestCid) external returns (uint256 id) {
        if (root == bytes32(0)) revert ZeroRoot();
        id = _datasetIds[root];
        if (id != 0) return id;
        _datasetRoots.push(root);
        id = _datasetRoots.length;
        _datasetIds[root] = SafeCast.toUint32(id);
        emit DatasetRegistered(root, manifestCid, msg.sender);
    }

    // -------------------------------------------------------------- versions

    /**
     * @notice Append a version to `modelId`. Owner or maintainer only. Its gas does not depend
     * on the model's size: only the roots are stored.
     * @param weightsRoot The weights' `modelreg-tensors-v1` root. Committing a root this model
     * already has is refused, which makes a retried commit harmless.
     * @param datasetRoot A root registered with {registerDataset}, or 0 for none.
     * @param parentModel With `parentVersion`, the version this one derives from (a fine-tune
     * may name another model's version), or 0 and 0 for none. It must exist.
     * @param manifestCid IPFS CID of the checkpoint manifest. Stored in the
     * {VersionCommitted} log only: logs are part of the chain and as permanent as storage.
     * @return version The new version's number, counting from 1.
     */
    function commitVersion(
        uint256 modelId,
        bytes32 weightsRoot,
        bytes32 datasetRoot,
        uint256 parentModel,
        uint256 parentVersion,
        string calldata manifestCid
    ) external returns (uint256 version) {
        Model storage m = _existingModel(modelId);
        if (msg.sender != m.owner && !_maintainers[modelId][msg.sender]) {
            revert NotOwnerOrMaintainer(modelId, msg.sender);
        }
        if (weightsRoot == bytes32(0)) revert ZeroRoot();
        Commit storage c = _commits[modelId][weightsRoot];
        if (c.committer != address(0)) revert DuplicateWeightsRoot(modelId, weightsRoot);

        uint32 compactDatasetId;
        if (datasetRoot != bytes32(0)) {
            compactDatasetId = _datasetIds[datasetRoot];
            if (compactDatasetId == 0) revert DatasetNotRegistered(datasetRoot);
        }
        // An existing version implies both numbers fit in 32 bits, so the casts below are exact.
        if ((parentModel | parentVersion) != 0 && _weightsRoots[parentModel][parentVersion] == bytes32(0)) {
            revert ParentNotFound(parentModel, parentVersion);
        }

        version = ++m.versionCount;
        _weightsRoots[modelId][version] = weightsRoot;
        c.committer = msg.sender;
        c.datasetId = compactDatasetId;
        c.parentModel = uint32(parentModel);
        c.parentVersion = uint32(parentVersion);
        emit VersionCommitted(
            modelId, version, weightsRoot, datasetRoot, parentModel, parentVersion, manifestCid, msg.sender
        );
    }

    /**
     * @notice Mark version `version` of `modelId` revoked. Owner or maintainer only. The version
     * stays readable; {getVersion} reports the revocation, its reason and revoker.
     * @param reason Why, for people reading the history.
     * @param replacement A version of the same model to use instead, or 0 for none.
     */
    function revokeVersion(uint256 modelId, uint256 version, string calldata reason, uint256 replacement)
        external
    {
        Model storage m = _existingModel(modelId);
        if (msg.sender != m.owner && !_maintainers[modelId][msg.sender]) {
            revert NotOwnerOrMaintainer(modelId, msg.sender);
        }
        _requireVersion(modelId, version);
        if (replacement != 0) {
            _requireVersion(modelId, replacement);
            if (replacement == version) revert SelfReplacement(modelId, version);
        }
        Revocation storage r = _revocations[modelId][version];
        if (r.revoker != address(0)) revert VersionAlreadyRevoked(modelId, version);
        r.revoker = msg.sender;
        r.replacement = uint32(replacement);
        r.reason = reason;
        emit VersionRevoked(modelId, version, reason, replacement, msg.sender);
    }

    // ----------------------------------------------------------------- views

    /// @notice The number of models registered so far; ids run from 1 to this.
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @notice The id of the model named `name`, or 0 if there is none.
    function modelIdByName(string calldata name) external view returns (uint256) {
        return _modelIdByName[keccak256(bytes(name))];
    }

    /// @notice Model `modelId`'s name, metadata, owner, pending owner and version count.
    function getModel(uint256 modelId) external view returns (ModelInfo memory) {
        Model storage m = _existingModel(modelId);
        return ModelInfo(m.name, m.metadata, m.owner, m.pendingOwner, m.versionCount);
    }

    /// @notice Whether `account` is a maintainer of `modelId` (the owner is not, unless added).
    function isMaintainer(uint256 modelId, address account) external view returns (bool) {
        return _maintainers[modelId][account];
    }

    /// @notice The compact id of the dataset with root `root`, or 0 if it is not registered.
    function datasetId(bytes32 root) external view returns (uint256) {
        return _datasetIds[root];
    }

    /// @notice The number of versions of `modelId`; versions run from 1 to this.
    function versionCount(uint256 modelId) external view returns (uint256) {
        return _existingModel(modelId).versionCount;
    }

    /// @notice Everything stored about version `version` of `modelId`, revoked or not.
    function getVersion(uint256 modelId, uint256 version) external view returns (VersionInfo memory info) {
        bytes32 weightsRoot = _requireVersion(modelId, version);
        Commit storage c = _commits[modelId][weightsRoot];
        Revocation storage r = _revocations[modelId][version];
        info.weightsRoot = weightsRoot;
        if (c.datasetId != 0) info.datasetRoot = _datasetRoots[c.datasetId - 1];
        info.parentModel = c.parentModel;
        info.parentVersion = c.parentVersion;
        info.committer = c.committer;
        info.revoked = r.revoker != address(0);
        info.revoker = r.revoker;
        info.replacement = r.replacement;
        info.revocationReason = r.reason;
    }

    /**
     * @notice Whether `proof` shows that tensor `leaf` is in the weights of version `version`
     * of `modelId`. The leaf hash is computed here from the values, so a true answer names the
     * tensor proven, not just some hash.
     * @dev A revoked version still verifies: revocation says "do not use", not "never existed".
     */
    function verifyTensor(uint256 modelId, uint256 version, TensorLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 weightsRoot = _requireVersion(modelId, version);
        return MerkleProof.verifyCalldata(proof, weightsRoot, _leafHash(leaf));
    }

    /**
     * @notice Whether a multiproof (`proof`, `proofFlags`, as @openzeppelin/merkle-tree's
     * `getMultiProof` returns them) shows that every tensor in `leaves`, in the proof's order,
     * is in the weights of version `version` of `modelId`.
     * @dev A malformed multiproof (flags, proof and leaves whose lengths do not fit) reverts with
     * OpenZeppelin's `MerkleProofInvalidMultiproof` rather than returning false.
     */
    function verifyTensors(
        uint256 modelId,
        uint256 version,
        TensorLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool) {
        bytes32 weightsRoot = _requireVersion(modelId, version);
        bytes32[] memory hashes = new bytes32[](leaves.length);
        for (uint256 i = 0; i < leaves.length; ++i) {
            hashes[i] = _leafHash(leaves[i]);
        }
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, weightsRoot, hashes);
    }

    // -------------------------------------------------------------- internal

    function _existingModel(uint256 modelId) private view returns (Model storage m) {
        m = _models[modelId];
        if (m.owner == address(0)) revert ModelNotFound(modelId);
    }

    function _requireOwner(uint256 modelId) private view {
        if (msg.sender != _existingModel(modelId).owner) revert NotModelOwner(modelId, msg.sender);
    }

    function _requireVersion(uint256 modelId, uint256 version) private view returns (bytes32 weightsRoot) {
        weightsRoot = _weightsRoots[modelId][version];
        if (weightsRoot == bytes32(0)) {
            _existingModel(modelId);
            revert VersionNotFound(modelId, version);
        }
    }

    // The StandardMerkleTree leaf: hashed twice so that no 64-byte leaf preimage can pass for
    // an internal node (a second-preimage attack on the tree).
    function _leafHash(TensorLeaf calldata leaf) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(leaf.name, leaf.dtype, leaf.shape, leaf.sha256))));
    }
}
