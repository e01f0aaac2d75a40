// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/**
 * @title ModelRegistry
 * @notice An append-only registry of ML model versions, version 3. A version binds a model to
 * what it is (the Merkle root of its tensors, tree `modelreg-tensors-v1`, their count, and the
 * root of its other files, tree `modelreg-files-v1`), the dataset it was trained on, an
 * optional parent version and the IPFS CID of its manifest.
 *
 * Priced for chains where a new storage slot is dear (EIP-8037's state gas): no call but a
 * first registration creates a slot. Each model keeps one accumulator, updated in place: the
 * hash of its id, its version count and the peaks of a Merkle Mountain Range whose leaves are
 * its versions (`keccak256(abi.encode(modelId, version, VersionRecord))`). The committer
 * supplies the peaks, which the contract checks against the accumulator before it appends.
 * A version's record lives in its {VersionCommitted} event; the verify functions and
 * {revokeVersion} take the record back with its inclusion proof and check both on-chain.
 *
 * Ids start at 1 so that 0 can mean "none": model 0, version 0, dataset 0.
 *
 * Trust, in the order a reviewer asks:
 * - Maintainers belong to an ownership epoch. Accepting ownership starts a new epoch, which
 *   clears every maintainer at once ({MaintainersCleared}): a seller's keys lose their rights.
 * - The owner may revoke any version; a maintainer only the versions it committed itself (the
 *   committer is in the proven record), so a leaked maintainer key cannot burn the owner's
 *   releases. Revocation never deletes: it sets one bit; the version stays provable.
 * - A dataset record belongs to its registrant: registering a root that someone else
 *   registered creates a second record with its own id. A commit names the record (id, root
 *   and registrant, checked against storage).
 * - Duplicate content is refused by the client before it sends (it reads the model's history
 *   from events, checked against the accumulator); the contract does not spend a slot on it.
 * - A Merkle proof shows that a leaf is in a tree; it cannot show that the tree has no second
 *   leaf of the same name. modelreg's sealer refuses duplicate names and a version commits its
 *   tensor count: a verifier that holds the whole manifest checks both.
 * - Names cannot be mistaken for ids or for each other: 1 to 64 of `a-z`, `0-9` and `-`,
 *   starting with a letter, with no `--` and no trailing `-`. Every string has a length cap.
 */
contract ModelRegistry is IModelRegistry {
    uint256 private constant _VERSION = 3;
    uint256 private constant _MAX_NAME = 64;
    uint256 private constant _MAX_METADATA = 4096;
    uint256 private constant _MAX_CID = 128;
    uint256 private constant _MAX_REASON = 512;
    uint256 private constant _LOW_REVOCATIONS = 32; // versions whose revoked bit is in Model

    // One slot per model, and a second written only while an ownership transfer is pending.
    struct Model {
        address owner; // never zero once registered: it marks that the model exists
        uint32 versionCount;
        uint32 epoch; // ownership changes so far
        uint32 revokedLow; // bit v - 1: version v (1 to 32) is revoked
        address pendingOwner;
    }

    // One slot for the whole registry, nonzero from deployment so that no call pays to create it.
    struct Counts {
        uint32 models;
        uint32 datasets;
        bool live;
    }

    Counts private _counts;
    mapping(uint256 modelId => Model) private _models;
    // The model's accumulator, keyed by its name's hash: the same slot refuses a second model
    // of that name, so registering a model creates two slots, not three.
    mapping(bytes32 nameHash => bytes32 accumulator) private _accumulators;
    // The epoch a maintainer was added in, plus one (0: never added).
    mapping(uint256 modelId => mapping(address account => uint256 epochPlusOne)) private _maintainers;
    mapping(bytes32 root => mapping(address registrant => uint256 datasetId)) private _datasetIds;
    // Revoked bits of versions 33 and up: bit (v - 33) % 256 of word (v - 33) / 256.
    mapping(uint256 modelId => mapping(uint256 word => uint256 bits)) private _revokedHigh;

    constructor() {
        _counts.live = true;
    }

    /// @inheritdoc IModelRegistry
    function version() external pure returns (uint256) {
        return _VERSION;
    }

    // ---------------------------------------------------------------- models

    /**
     * @notice Register a model named `name`; the caller becomes its owner.
     * @param name Unique name of 1 to 64 characters from `a-z`, `0-9` and `-`, starting with a
     * letter (so that it is never read as an id), with no `--` and no trailing `-`.
     * @param metadata Free text (for instance JSON) describing the model, at most 4096 bytes;
     * kept in {ModelRegistered} only, as is the name.
     * @return modelId The new model's id, counting from 1.
     */
    function registerModel(string calldata name, string calldata metadata) external returns (uint256 modelId) {
        _checkName(name);
        _checkLength("metadata", metadata, _MAX_METADATA);
        bytes32 nameHash = keccak256(bytes(name));
        if (_accumulators[nameHash] != bytes32(0)) revert ModelNameTaken(name);
        modelId = ++_counts.models;
        _models[modelId].owner = msg.sender;
        _accumulators[nameHash] = keccak256(abi.encode(modelId, uint256(0), new bytes32[](0)));
        emit ModelRegistered(modelId, nameHash, msg.sender, name, metadata);
    }

    /**
     * @notice Let `account` commit versions of `modelId`, and revoke the ones it commits. Owner
     * only. The role lasts until it is removed or the model changes hands.
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

    /// @notice Offer `modelId` to `newOwner`, who must call {acceptOwnership}. Owner only.
    /// Offering to the zero address withdraws a pending offer.
    function transferOwnership(uint256 modelId, address newOwner) external {
        _requireOwner(modelId).pendingOwner = newOwner;
        emit OwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @notice Take ownership of `modelId`. Only the pending owner named by {transferOwnership}.
    /// Starts a new ownership epoch: every maintainer of the previous owner loses its role.
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
     * @notice Record a dataset by its Merkle root, with the caller as registrant. Each (root,
     * registrant) pair is its own record; registering it again returns the existing id and
     * emits nothing.
     * @param manifestCid IPFS CID of the dataset manifest (at most 128 bytes); in the event only.
     * @return id The dataset's id, counting from 1; a commit names it.
     */
    function registerDataset(bytes32 root, string calldata manifestCid) external returns (uint256 id) {
        if (root == bytes32(0)) revert ZeroRoot();
        _checkLength("manifestCid", manifestCid, _MAX_CID);
        id = _datasetIds[root][msg.sender];
        if (id != 0) return id;
        id = ++_counts.datasets;
        _datasetIds[root][msg.sender] = id;
        emit DatasetRegistered(id, root, msg.sender, manifestCid);
    }

    // -------------------------------------------------------------- versions

    /**
     * @notice Append a version to `modelId`. Owner or maintainer only. Creates no storage: the
     * version's record goes into the event and its hash into the model's accumulator.
     * @param nameHash keccak256 of the model's name: where its accumulator is.
     * @param content The weights root (nonzero), the number of tensors (at least 1) and the
     * files root (0 when the model has no other files).
     * @param dataset The dataset record used (id, root, registrant), or all zero for none.
     * @param parentModel With `parentVersion`, the version this one derives from, or 0 and 0.
     * @param manifestCid IPFS CID of the checkpoint manifest, at most 128 bytes.
     * @param peaks The model's accumulator peaks now, highest first, as its events give them.
     * @return newVersion The new version's number, counting from 1.
     */
    function commitVersion(
        uint256 modelId,
        bytes32 nameHash,
        VersionContent calldata content,
        DatasetRef calldata dataset,
        uint256 parentModel,
        uint256 parentVersion,
        string calldata manifestCid,
        bytes32[] calldata peaks
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
        if (dataset.id == 0) {
            if (dataset.root != bytes32(0) || dataset.registrant != address(0)) revert DatasetNotFound(0);
        } else if (_datasetIds[dataset.root][dataset.registrant] != dataset.id) {
            revert DatasetNotFound(dataset.id);
        }
        if ((parentModel | parentVersion) != 0 && (parentVersion == 0 || parentVersion > _models[parentModel].versionCount)) {
            revert ParentNotFound(parentModel, parentVersion);
        }
        uint256 count = m.versionCount;
        if (_accumulators[nameHash] != _accumulator(modelId, count, peaks)) revert AccumulatorMismatch(modelId);

        newVersion = count + 1;
        m.versionCount = SafeCast.toUint32(newVersion);
        VersionRecord memory record = VersionRecord(
            content, dataset, parentModel, parentVersion, keccak256(bytes(manifestCid)), msg.sender
        );
        _accumulators[nameHash] = _append(modelId, count, peaks, keccak256(abi.encode(modelId, newVersion, record)));
        emit VersionCommitted(
            modelId,
            newVersion,
            content.weightsRoot,
            content.tensorCount,
            content.filesRoot,
            dataset.id,
            dataset.root,
            dataset.registrant,
            parentModel,
            parentVersion,
            manifestCid,
            msg.sender
        );
    }

    /**
     * @notice Mark the proven version revoked. The owner may revoke any version; a maintainer
     * only one it committed itself. The version stays provable; {isRevoked} reports it.
     * @param reason Why, for people reading the history; at most 512 bytes; in the event only.
     * @param replacement A version of the same model to use instead, not revoked itself, or 0.
     */
    function revokeVersion(VersionProof calldata proof, string calldata reason, uint256 replacement) external {
        uint256 modelId = proof.modelId;
        uint256 version_ = proof.version;
        Model storage m = _existingModel(modelId);
        bool isOwner = msg.sender == m.owner;
        if (!isOwner && !_isMaintainer(m, modelId, msg.sender)) revert NotOwnerOrMaintainer(modelId, msg.sender);
        _checkProof(proof, m.versionCount);
        if (!isOwner && proof.record.committer != msg.sender) revert NotCommitter(modelId, version_, msg.sender);
        _checkLength("reason", reason, _MAX_REASON);
        if (replacement != 0) {
            if (replacement == version_) revert SelfReplacement(modelId, version_);
            if (replacement > m.versionCount) revert VersionNotFound(modelId, replacement);
            if (_isRevoked(m, modelId, replacement)) revert ReplacementRevoked(modelId, replacement);
        }
        if (_isRevoked(m, modelId, version_)) revert VersionAlreadyRevoked(modelId, version_);
        if (version_ <= _LOW_REVOCATIONS) {
            m.revokedLow |= uint32(1 << (version_ - 1));
        } else {
            uint256 bit = version_ - _LOW_REVOCATIONS - 1;
            _revokedHigh[modelId][bit >> 8] |= 1 << (bit & 255);
        }
        emit VersionRevoked(modelId, version_, reason, replacement, msg.sender);
    }

    // ----------------------------------------------------------------- views

    /// @notice The number of models registered so far; ids run from 1 to this.
    function modelCount() external view returns (uint256) {
        return _counts.models;
    }

    /// @notice The number of dataset records; ids run from 1 to this.
    function datasetCount() external view returns (uint256) {
        return _counts.datasets;
    }

    /// @notice Model `modelId`'s owner, pending owner, version count and epoch.
    function getModel(uint256 modelId) external view returns (ModelInfo memory) {
        Model storage m = _existingModel(modelId);
        return ModelInfo(m.owner, m.pendingOwner, m.versionCount, m.epoch);
    }

    /// @notice Whether `account` is a maintainer of `modelId` now (the owner is not, unless added).
    function isMaintainer(uint256 modelId, address account) external view returns (bool) {
        return _isMaintainer(_existingModel(modelId), modelId, account);
    }

    /// @notice The accumulator of the model whose name hashes to `nameHash`, or 0 if none:
    /// keccak256(abi.encode(modelId, versionCount, peaks)).
    function accumulatorOf(bytes32 nameHash) external view returns (bytes32) {
        return _accumulators[nameHash];
    }

    /// @notice The id of `registrant`'s record of the dataset with root `root`, or 0 if none.
    function datasetIdOf(bytes32 root, address registrant) external view returns (uint256) {
        return _datasetIds[root][registrant];
    }

    /// @notice The number of versions of `modelId`; versions run from 1 to this.
    function versionCount(uint256 modelId) external view returns (uint256) {
        return _existingModel(modelId).versionCount;
    }

    /// @notice Whether version `version` of `modelId` is revoked; VersionNotFound if there is none.
    function isRevoked(uint256 modelId, uint256 version_) external view returns (bool) {
        Model storage m = _existingModel(modelId);
        if (version_ == 0 || version_ > m.versionCount) revert VersionNotFound(modelId, version_);
        return _isRevoked(m, modelId, version_);
    }

    /**
     * @notice Whether `proof` shows that tensor `leaf` is in the weights of the version that
     * `version` proves. The leaf hash is computed here from the values.
     * @dev Reverts with ContentMismatch when `version` is not a proof of the model's history.
     */
    function verifyTensor(VersionProof calldata version_, TensorLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        _checkProof(version_, _existingModel(version_.modelId).versionCount);
        return MerkleProof.verifyCalldata(proof, version_.record.content.weightsRoot, _tensorLeafHash(leaf));
    }

    /**
     * @notice Whether a multiproof (`proof`, `proofFlags`, as @openzeppelin/merkle-tree's
     * `getMultiProof` returns them) shows that every tensor in `leaves` is in the proven
     * version's weights. Refuses an empty `leaves` ({EmptyMultiproof}).
     */
    function verifyTensors(
        VersionProof calldata version_,
        TensorLeaf[] calldata leaves,
        bytes32[] calldata proof,
        bool[] calldata proofFlags
    ) external view returns (bool) {
        if (leaves.length == 0) revert EmptyMultiproof();
        _checkProof(version_, _existingModel(version_.modelId).versionCount);
        bytes32[] memory hashes = new bytes32[](leaves.length);
        for (uint256 i = 0; i < leaves.length; ++i) {
            hashes[i] = _tensorLeafHash(leaves[i]);
        }
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, version_.record.content.weightsRoot, hashes);
    }

    /// @notice Whether `proof` shows that file `leaf` is among the proven version's other
    /// files. False for a version without files (files root 0).
    function verifyFile(VersionProof calldata version_, FileLeaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        _checkProof(version_, _existingModel(version_.modelId).versionCount);
        bytes32 filesRoot = version_.record.content.filesRoot;
        if (filesRoot == bytes32(0)) return false;
        bytes32 leafHash = keccak256(bytes.concat(keccak256(abi.encode(leaf.path, leaf.size, leaf.sha256))));
        return MerkleProof.verifyCalldata(proof, filesRoot, leafHash);
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

    function _isRevoked(Model storage m, uint256 modelId, uint256 version_) private view returns (bool) {
        if (version_ <= _LOW_REVOCATIONS) return (m.revokedLow >> (version_ - 1)) & 1 == 1;
        uint256 bit = version_ - _LOW_REVOCATIONS - 1;
        return (_revokedHigh[modelId][bit >> 8] >> (bit & 255)) & 1 == 1;
    }

    function _accumulator(uint256 modelId, uint256 count, bytes32[] memory peaks) private pure returns (bytes32) {
        return keccak256(abi.encode(modelId, count, peaks));
    }

    // The accumulator after appending `leaf` to a range of `count` leaves with `peaks`: the new
    // leaf merges with one peak per trailing one bit of `count`.
    function _append(uint256 modelId, uint256 count, bytes32[] calldata peaks, bytes32 leaf)
        private
        pure
        returns (bytes32)
    {
        uint256 kept = peaks.length;
        for (uint256 c = count; c & 1 == 1; c >>= 1) {
            leaf = _hashPair(peaks[--kept], leaf);
        }
        bytes32[] memory next = new bytes32[](kept + 1);
        for (uint256 i = 0; i < kept; ++i) {
            next[i] = peaks[i];
        }
        next[kept] = leaf;
        return _accumulator(modelId, count + 1, next);
    }

    // Reverts unless `p` proves that `p.record` is version `p.version` of model `p.modelId`,
    // which has `count` versions.
    function _checkProof(VersionProof calldata p, uint256 count) private view {
        uint256 version_ = p.version;
        if (version_ == 0 || version_ > count) revert VersionNotFound(p.modelId, version_);
        if (_accumulators[p.nameHash] != _accumulator(p.modelId, count, p.peaks)) {
            revert ContentMismatch(p.modelId, version_);
        }
        bytes32 node = keccak256(abi.encode(p.modelId, version_, p.record));
        uint256 index = version_ - 1;
        uint256 offset = 0;
        uint256 peak = 0;
        for (uint256 height = 32; height > 0;) {
            --height;
            uint256 size = 1 << height;
            if (count & size == 0) continue;
            if (index < offset + size) {
                if (p.path.length != height) revert ContentMismatch(p.modelId, version_);
                uint256 local = index - offset;
                for (uint256 level = 0; level < height; ++level) {
                    node = (local >> level) & 1 == 1 ? _hashPair(p.path[level], node) : _hashPair(node, p.path[level]);
                }
                if (node != p.peaks[peak]) revert ContentMismatch(p.modelId, version_);
                return;
            }
            offset += size;
            ++peak;
        }
    }

    function _hashPair(bytes32 left, bytes32 right) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            h := keccak256(0x00, 0x40)
        }
    }

    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        if (b.length == 0 || b.length > _MAX_NAME || b[0] < "a" || b[0] > "z" || b[b.length - 1] == "-") {
            revert ModelNameInvalid(name);
        }
        for (uint256 i = 1; i < b.length; ++i) {
            bytes1 ch = b[i];
            bool ok = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || (ch == "-" && b[i - 1] != "-");
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
