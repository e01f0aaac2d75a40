// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/**
 * @title ModelRegistry
 * @notice An append-only registry of ML model versions. A version binds a model to what it is
 * (the Merkle root of its tensors, tree `modelreg-tensors-v1`, their count, and the root of its
 * other files, tree `modelreg-files-v1`), the dataset it was trained on, an optional parent
 * version and the IPFS CID of its manifest.
 *
 * Every state change emits an event carrying everything needed to rebuild the history from
 * logs alone, so an auditor needs no trust in whoever runs the registry's front end.
 *
 * Ids start at 1 so that 0 can mean "none": model 0, version 0, dataset 0.
 *
 * Trust, in the order a reviewer asks:
 * - Maintainers belong to an ownership epoch. Accepting ownership starts a new epoch, which
 *   clears every maintainer at once ({MaintainersCleared}): a seller's keys lose their rights.
 * - The owner may revoke any version; a maintainer only the versions it committed itself, so a
 *   leaked maintainer key cannot burn the owner's releases. Revocation never deletes: the
 *   version stays readable and verifiable, and the same content may be committed again as a
 *   new version (history stays append-only; {getVersion} keeps the old version's record).
 * - A dataset record belongs to its registrant: registering a root that someone else
 *   registered creates a second record with its own id. A commit names the dataset id it used,
 *   so a first registrant cannot put its manifest CID or its address on someone else's model.
 * - A Merkle proof shows that a leaf is in a tree; it cannot show that the tree has no second
 *   leaf of the same name. modelreg's sealer refuses duplicate names (across shards too) and a
 *   version commits its tensor count: a verifier that holds the whole manifest checks both.
 * - Names are canonical (1 to 64 of `a-z0-9._-`) so that look-alike names cannot coexist, and
 *   every string has a length cap so that no call can bloat the history.
 */
contract ModelRegistry is IModelRegistry {
    uint256 private constant _VERSION = 2;
    uint256 private constant _MAX_NAME = 64;
    uint256 private constant _MAX_METADATA = 4096;
    uint256 private constant _MAX_CID = 128;
    uint256 private constant _MAX_REASON = 512;

    struct Model {
        address owner; // never zero once registered: it marks that the model exists
        uint32 versionCount;
        uint32 epoch; // ownership changes so far
        address pendingOwner;
        string name;
        string metadata;
    }

    // One slot per commit, keyed by content: it records the version and refuses a second live
    // commit of the same content in one read.
    struct Commit {
        address committer;
        uint32 version;
        uint32 tensorCount;
        uint32 datasetId;
    }

    struct Dataset {
        bytes32 root;
        address registrant;
    }

    struct Revocation {
        address revoker;
        uint32 replacement;
        string reason;
    }

    // 32 bits: commits pack version, count and dataset ids; checked casts refuse any beyond.
    uint32 private _modelCount;
    mapping(uint256 modelId => Model) private _models;
    mapping(bytes32 nameHash => uint256 modelId) private _modelIdByName;
    // The epoch a maintainer was added in, plus one (0: never added).
    mapping(uint256 modelId => mapping(address account => uint256 epochPlusOne)) private _maintainers;

    Dataset[] private _datasets; // dataset id i is _datasets[i - 1]
    mapping(bytes32 root => mapping(address registrant => uint256 datasetId)) private _datasetIds;

    // Storage keeps a hash of each version's content, not its two roots: two fresh slots per
    // commit instead of three keep commitVersion under 100,000 gas. The roots are in the event
    // and the verify functions take them back, checked against this hash.
    mapping(uint256 modelId => mapping(uint256 version => bytes32 contentHash)) private _contentHashes;
    mapping(uint256 modelId => mapping(bytes32 contentHash => Commit)) private _commits;
    // A commit whose content was committed again after its revocation moves here.
    mapping(uint256 modelId => mapping(uint256 version => Commit)) private _earlierCommits;
    mapping(uint256 modelId => mapping(uint256 version => Revocation)) private _revocations;

    /// @inheritdoc IModelRegistry
    function version() external pure returns (uint256) {
        return _VERSION;
    }

    // ---------------------------------------------------------------- models

    /**
     * @notice Register a model named `name`; the caller becomes its owner.
     * @param name Unique name of 1 to 64 characters from `a-z`, `0-9`, `.`, `_` and `-`:
     * canonical, so that `GPT-tiny` or `gpt-tiny` with an invisible character cannot sit next to
     * `gpt-tiny`. {modelIdByName} finds the model by it.
     * @param metadata Free text (for instance JSON) describing the model, at most 4096 bytes.
     * @return modelId The new model's id, counting from 1.
     */
    function registerModel(string calldata name, string calldata metadata) external returns (uint256 modelId) {
        _checkName(name);
        _checkLength("metadata", metadata, _MAX_METADATA);
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
     * @notice Let `account` commit versions of `modelId`, and revoke the ones it commits. Owner
     * only. The role lasts until it is removed or the model changes hands.
     * @dev A maintainer can commit any weights under the model's name: grant it only to keys
     * you would trust with the owner's signature on a release.
     */
    function addMaintainer(uint256 modelId, address account) external {
        Model storage m = _requireOwner(modelId);
        if (account == address(0)) revert ZeroAddress();
        if (_isMaintainer(m, modelId, account)) revert AlreadyMaintainer(modelId, account);
        _maintainers[modelId][account] = uint256(m.epoch) + 1;
        emit MaintainerAdded(modelId, account);
    }

    /// @notice Withdraw `account`'s maintainer role on `modelId`. Owner only. Its past commits stay.
    function removeMaintainer(uint256 modelId, address account) external {
        Model storage m = _requireOwner(modelId);
        if (!_isMaintainer(m, modelId, account)) revert NotMaintainer(modelId, account);
        delete _maintainers[modelId][account];
        emit MaintainerRemoved(modelId, account);
    }

    /**
     * @notice Offer `modelId` to `newOwner`, who must call {acceptOwnership}. Owner only.
     * Offering to the zero address withdraws a pending offer.
     */
    function transferOwnership(uint256 modelId, address newOwner) external {
        _requireOwner(modelId).pendingOwner = newOwner;
        emit OwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /**
     * @notice Take ownership of `modelId`. Only the pending owner named by {transferOwnership}.
     * @dev Starts a new ownership epoch: every maintainer of the previous owner loses its role
     * (one write, however many there were), and {MaintainersCleared} says so.
     */
    function acceptOwnership(uint256 modelId) external {
        Model storage m = _existingModel(modelId);
        if (msg.sender != m.pendingOwner) revert NotPendingOwner(modelId, msg.sender);
        address previous = m.owner;
        m.owner = msg.sender;
        m.pendingOwner = address(0);
        uint32 epoch = ++m.epoch;
        emit OwnershipTransferred(modelId, previous, msg.sender);
        emit MaintainersCleared(modelId, epoch);
    }

    // -------------------------------------------------------------- datasets

    /**
     * @notice Record a dataset by its Merkle root, with the caller as registrant. Anyone may
     * register any root: each (root, registrant) pair is its own record, so registering a root
     * first gives no say over anyone else's record. Registering the same root again from the
     * same account returns the existing id and emits nothing.
     * @param root The dataset's `modelreg-files-v1` root.
     * @param manifestCid IPFS CID of the dataset manifest (at most 128 bytes); kept in the event
     * only. A reader must check that the manifest's root is `root` before trusting it.
     * @return id The dataset's id, counting from 1; a commit names it.
     */
    function registerDataset(bytes32 root, string calldata manifestCid) external returns (uint256 id) {
        if (root == bytes32(0)) revert ZeroRoot();
        _checkLength("manifestCid", manifestCid, _MAX_CID);
        id = _datasetIds[root][msg.sender];
        if (id != 0) return id;
        _datasets.push(Dataset(root, msg.sender));
        id = _datasets.length;
        _datasetIds[root][msg.sender] = id;
        emit DatasetRegistered(id, root, msg.sender, manifestCid);
    }

    // -------------------------------------------------------------- versions

    /**
     * @notice Append a version to `modelId`. Owner or maintainer only. Its gas does not depend
     * on the model's size: only a hash of the roots is stored.
     * @param content The weights root (nonzero), the number of tensors (at least 1) and the
     * files root (0 when the model has no other files). Committing content that a live version
     * of this model already has is refused, which makes a retried commit harmless; content
     * whose version was revoked may be committed again, as a new version.
     * @param datasetId A dataset id from {registerDataset}, or 0 for none.
     * @param parentModel With `parentVersion`, the version this one derives from (a fine-tune
     * may name another model's version), or 0 and 0 for none. It must exist.
     * @param manifestCid IPFS CID of the checkpoint manifest, at most 128 bytes. Stored in the
     * {VersionCommitted} log only: logs are part of the chain and as permanent as storage.
     * @return newVersion The new version's number, counting from 1.
     */
    function commitVersion(
        uint256 modelId,
        VersionContent calldata content,
        uint256 datasetId,
        uint256 parentModel,
        uint256 parentVersion,
        string calldata manifestCid
    ) external returns (uint256 newVersion) {
        Model storage m = _existingModel(modelId);
        if (msg.sender != m.owner && !_isMaintainer(m, modelId, msg.sender)) {
            revert NotOwnerOrMaintainer(modelId, msg.sender);
        }
        if (content.weightsRoot == bytes32(0)) revert ZeroRoot();
        if (content.tensorCount == 0 || content.tensorCount > type(uint32).max) {
            revert TensorCountInvalid(content.tensorCount);
        }
        _checkLength("manifestCid", manifestCid, _MAX_CID);
        bytes32 hash = _contentHash(content);
        Commit storage c = _commits[modelId][hash];
        if (c.committer != address(0)) {
            if (_revocations[modelId][c.version].revoker == address(0)) {
                revert DuplicateVersion(modelId, c.version, content.weightsRoot);
            }
            _earlierCommits[modelId][c.version] = c;
        }
        bytes32 datasetRoot;
        if (datasetId != 0) {
            if (datasetId > _datasets.length) revert DatasetNotFound(datasetId);
            datasetRoot = _datasets[datasetId - 1].root;
        }
        // An existing version implies both numbers fit in 32 bits.
        if ((parentModel | parentVersion) != 0 && _contentHashes[parentModel][parentVersion] == bytes32(0)) {
            revert ParentNotFound(parentModel, parentVersion);
        }

        newVersion = ++m.versionCount;
        _contentHashes[modelId][newVersion] = hash;
        _commits[modelId][hash] = Commit(
            msg.sender, uint32(newVersion), uint32(content.tensorCount), SafeCast.toUint32(datasetId)
        );
        emit VersionCommitted(
            modelId,
            newVersion,
            content.weightsRoot,
            content.tensorCount,
            content.filesRoot,
            datasetId,
            datasetRoot,
            parentModel,
            parentVersion,
            manifestCid,
            msg.sender
        );
    }

    /**
     * @notice Mark version `version` of `modelId` revoked. The owner may revoke any version; a
     * maintainer only one it committed itself. The version stays readable and verifiable;
     * {getVersion} reports the revocation, its reason and revoker.
     * @param reason Why, for people reading the history; at most 512 bytes.
     * @param replacement A version of the same model to use instead, not revoked itself, or 0.
     */
    function revokeVersion(uint256 modelId, uint256 version_, string calldata reason, uint256 replacement)
        external
    {
        Model storage m = _existingModel(modelId);
        bool isOwner = msg.sender == m.owner;
        if (!isOwner && !_isMaintainer(m, modelId, msg.sender)) revert NotOwnerOrMaintainer(modelId, msg.sender);
        Commit storage c = _commitOf(modelId, version_);
        if (!isOwner && c.committer != msg.sender) revert NotCommitter(modelId, version_, msg.sender);
        _checkLength("reason", reason, _MAX_REASON);
        if (replacement != 0) {
            if (replacement == version_) revert SelfReplacement(modelId, version_);
            _commitOf(modelId, replacement);
            if (_revocations[modelId][replacement].revoker != address(0)) {
                revert ReplacementRevoked(modelId, replacement);
            }
        }
        Revocation storage r = _revocations[modelId][version_];
        if (r.revoker != address(0)) revert VersionAlreadyRevoked(modelId, version_);
        r.revoker = msg.sender;
        r.replacement = uint32(replacement);
        r.reason = reason;
        emit VersionRevoked(modelId, version_, reason, replacement, msg.sender);
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

    /// @notice Model `modelId`'s name, metadata, owner, pending owner, version count and epoch.
    function getModel(uint256 modelId) external view returns (ModelInfo memory) {
        Model storage m = _existingModel(modelId);
        return ModelInfo(m.name, m.metadata, m.owner, m.pendingOwner, m.versionCount, m.epoch);
    }

    /// @notice Whether `account` is a maintainer of `modelId` now (the owner is not, unless added).
    function isMaintainer(uint256 modelId, address account) external view returns (bool) {
        return _isMaintainer(_existingModel(modelId), modelId, account);
    }

    /// @notice The number of dataset records; ids run from 1 to this.
    function datasetCount() external view returns (uint256) {
        return _datasets.length;
    }

    /// @notice The id of `registrant`'s record of the dataset with root `root`, or 0 if none.
    function datasetIdOf(bytes32 root, address registrant) external view returns (uint256) {
        return _datasetIds[root][registrant];
    }

    /// @notice Dataset `id`'s root and registrant; its manifest CID is in {DatasetRegistered}.
    function getDataset(uint256 id) external view returns (bytes32 root, address registrant) {
        if (id == 0 || id > _datasets.length) revert DatasetNotFound(id);
        Dataset storage d = _datasets[id - 1];
        return (d.root, d.registrant);
    }

    /// @notice The number of versions of `modelId`; versions run from 1 to this.
    function versionCount(uint256 modelId) external view returns (uint256) {
        return _existingModel(modelId).versionCount;
    }

    /// @notice Everything stored about version `version` of `modelId`, revoked or not.
    function getVersion(uint256 modelId, uint256 version_) external view returns (VersionInfo memory info) {
        Commit storage c = _commitOf(modelId, version_);
        Revocation storage r = _revocations[modelId][version_];
        info.contentHash = _contentHashes[modelId][version_];
        info.tensorCount = c.tensorCount;
        info.datasetId = c.datasetId;
        info.committer = c.committer;
        info.revoked = r.revoker != address(0);
        info.revoker = r.revoker;
        info.replacement = r.replacement;
        info.revocationReason = r.reason;
    }

    /// @notice The hash a version stores for `content`: keccak256 of its ABI encoding.
    function contentHash(VersionContent calldata content) external pure returns (bytes32) {
        return _contentHash(content);
    }

    /**
     * @notice Whether `proof` shows that tensor `leaf` is in the weights of version `version`
     * of `modelId`, whose content (from {VersionCommitted}) is `content`. The leaf hash is
     * computed here from the values, so a true answer names the tensor proven, not just a hash.
     * @dev A true answer says the leaf is in the tree, not that no other leaf has its name: see
     * the contract's notes on trust. A revoked version still verifies: revocation says "do not
     * use", not "never existed".
     */
    function verifyTensor(
        uint256 modelId,
        uint256 version_,
        VersionContent calldata content,
        TensorLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        _requireContent(modelId, version_, content);
        return MerkleProof.verifyCalldata(proof, content.weightsRoot, _tensorLeafHash(leaf));
    }

    /**
     * @notice Whether a multiproof (`proof`, `proofFlags`, as @openzeppelin/merkle-tree's
     * `getMultiProof` returns them) shows that every tensor in `leaves`, in the proof's order,
     * is in the weights of version `version` of `modelId`.
     * @dev Refuses an empty `leaves` ({EmptyMultiproof}): with no leaves, a proof holding just
     * the root would pass and prove nothing. A malformed multiproof (flags, proof and leaves
     * whose lengths do not fit) reverts with OpenZeppelin's `MerkleProofInvalidMultiproof`.
     */
    function verifyTensors(
        uint256 modelId,
        uint256 version_,
        VersionContent calldata content,
        TensorLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool) {
        if (leaves.length == 0) revert EmptyMultiproof();
        _requireContent(modelId, version_, content);
        bytes32[] memory hashes = new bytes32[](leaves.length);
        for (uint256 i = 0; i < leaves.length; ++i) {
            hashes[i] = _tensorLeafHash(leaves[i]);
        }
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, content.weightsRoot, hashes);
    }

    /**
     * @notice Whether `proof` shows that file `leaf` (path, size, sha256; tree
     * `modelreg-files-v1`) is among the other files of version `version` of `modelId`.
     * @dev False for a version without files (files root 0).
     */
    function verifyFile(
        uint256 modelId,
        uint256 version_,
        VersionContent calldata content,
        FileLeaf calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        _requireContent(modelId, version_, content);
        if (content.filesRoot == bytes32(0)) return false;
        bytes32 leafHash = keccak256(bytes.concat(keccak256(abi.encode(leaf.path, leaf.size, leaf.sha256))));
        return MerkleProof.verifyCalldata(proof, content.filesRoot, leafHash);
    }

    // -------------------------------------------------------------- internal

    function _existingModel(uint256 modelId) private view returns (Model storage m) {
        m = _models[modelId];
        if (m.owner == address(0)) revert ModelNotFound(modelId);
    }

    function _requireOwner(uint256 modelId) private view returns (Model storage m) {
        m = _existingModel(modelId);
        if (msg.sender != m.owner) revert NotModelOwner(modelId, msg.sender);
    }

    function _isMaintainer(Model storage m, uint256 modelId, address account) private view returns (bool) {
        return _maintainers[modelId][account] == uint256(m.epoch) + 1;
    }

    function _commitOf(uint256 modelId, uint256 version_) private view returns (Commit storage c) {
        bytes32 hash = _contentHashes[modelId][version_];
        if (hash == bytes32(0)) {
            _existingModel(modelId);
            revert VersionNotFound(modelId, version_);
        }
        c = _commits[modelId][hash];
        if (c.version != version_) c = _earlierCommits[modelId][version_];
    }

    function _requireContent(uint256 modelId, uint256 version_, VersionContent calldata content) private view {
        bytes32 stored = _contentHashes[modelId][version_];
        if (stored == bytes32(0)) {
            _existingModel(modelId);
            revert VersionNotFound(modelId, version_);
        }
        if (stored != _contentHash(content)) revert ContentMismatch(modelId, version_);
    }

    function _contentHash(VersionContent calldata content) private pure returns (bytes32) {
        return keccak256(abi.encode(content.weightsRoot, content.tensorCount, content.filesRoot));
    }

    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        if (b.length == 0 || b.length > _MAX_NAME) revert ModelNameInvalid(name);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 ch = b[i];
            bool ok = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch == "." || ch == "_" || ch == "-";
            if (!ok) revert ModelNameInvalid(name);
        }
    }

    function _checkLength(string memory field, string calldata value, uint256 maxLength) private pure {
        if (bytes(value).length > maxLength) revert StringTooLong(field, bytes(value).length, maxLength);
    }

    // The StandardMerkleTree leaf: hashed twice so that no 64-byte leaf preimage can pass for
    // an internal node (a second-preimage attack on the tree).
    function _tensorLeafHash(TensorLeaf calldata leaf) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(leaf.name, leaf.dtype, leaf.shape, leaf.sha256))));
    }
}
