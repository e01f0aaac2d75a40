"""The chain client and the ModelRegistry contract, on every chain in tests/conftest.py."""

import pytest
from eth_utils import keccak
from web3.middleware import Web3Middleware

from modelreg.chain.client import RegistryClient
from modelreg.chain.signer import Signer
from modelreg.contracts.artifact import load_artifact
from modelreg.errors import (
    AccessDenied,
    ContractNotDeployed,
    DatasetNotFound,
    DuplicateRoot,
    InputInvalid,
    InsufficientFunds,
    ModelNameInvalid,
    ModelNameTaken,
    ModelNotFound,
    ParentNotFound,
    SignerInvalid,
    TransactionFailed,
    VersionNotFound,
)

ROOT_A = "0x" + "a1" * 32
ROOT_B = "0x" + "b2" * 32
ROOT_C = "0x" + "c3" * 32
DATA = "0x" + "da" * 32
# A realistic manifest CID (CIDv1, base32): commit gas depends on its length.
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.fixture
def owner(chain):
    return chain.signers[0]


@pytest.fixture
def stranger(chain):
    return chain.signers[1]


@pytest.fixture
def model(registry):
    model_id, _ = registry.register_model("gpt-tiny", '{"n_layer": 2}')
    return model_id


def as_signer(registry: RegistryClient, signer: Signer) -> RegistryClient:
    return RegistryClient.at(registry.w3, signer, registry.address, from_block=registry.from_block)


def send_raw(registry: RegistryClient, signer: Signer, fn):
    """Call the contract directly, bypassing the client's checks."""
    w3 = registry.w3
    tx = fn.build_transaction({"from": signer.address,
                               "nonce": w3.eth.get_transaction_count(signer.address, "pending")})
    return w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction))


# --- deployment ------------------------------------------------------------------------------

def test_the_deployed_code_is_the_committed_artifact(registry):
    assert registry.w3.eth.get_code(registry.address).to_0x_hex() == load_artifact()["deployedBytecode"]


def test_an_address_without_code_is_not_a_registry(chain, owner):
    with pytest.raises(ContractNotDeployed, match="no contract code at 0x0000000000000000000000000000000000001234"):
        RegistryClient.at(chain.w3, owner, "0x0000000000000000000000000000000000001234")


def test_a_read_only_client_refuses_to_write(registry):
    reader = RegistryClient.at(registry.w3, None, registry.address)
    with pytest.raises(SignerInvalid, match="cannot register model 'x': this client has no signing key"):
        reader.register_model("x")


def test_an_unfunded_key_is_told_to_fund_its_account(registry):
    broke = Signer.from_key(b"\x42" * 32)
    with pytest.raises(InsufficientFunds, match=f"{broke.address} cannot pay for gas"):
        as_signer(registry, broke).register_model("poor")


# --- models ------------------------------------------------------------------------------------

def test_models_get_ids_from_one_and_the_caller_owns_them(registry, owner):
    first, _ = registry.register_model("a", "meta-a")
    second, receipt = registry.register_model("b")
    assert (first, second) == (1, 2)
    assert receipt["status"] == 1 and receipt["gasUsed"] > 21000
    record = registry.get_model(1)
    assert (record.name, record.metadata, record.owner, record.pending_owner, record.version_count, record.epoch) == \
        ("a", "meta-a", owner.address, None, 0, 0)
    assert registry.model_count() == 2


def test_a_model_is_found_by_its_name(registry, model):
    assert registry.model_id("gpt-tiny") == model
    with pytest.raises(ModelNotFound, match="no model named 'gpt-large' is registered"):
        registry.model_id("gpt-large")


def test_a_second_model_with_the_same_name_is_refused(registry, model):
    with pytest.raises(ModelNameTaken, match=r"a model named 'gpt-tiny' already exists \(id 1\)"):
        registry.register_model("gpt-tiny")


def test_an_empty_model_name_is_refused(registry):
    with pytest.raises(ModelNameInvalid, match="'' is not a valid model name .* has no usable characters"):
        registry.register_model("")


def test_reading_a_model_that_does_not_exist_raises_model_not_found(registry):
    with pytest.raises(ModelNotFound, match="model 9 is not registered"):
        registry.get_model(9)


# --- access control --------------------------------------------------------------------------

STRANGER_WRITES = {
    "commit": lambda c, m, s: c.commit_version(m, ROOT_B, tensor_count=3, manifest_cid=CID),
    "add maintainer": lambda c, m, s: c.add_maintainer(m, s.address),
    "remove maintainer": lambda c, m, s: c.remove_maintainer(m, s.address),
    "revoke": lambda c, m, s: c.revoke_version(m, 1, "spite"),
    "transfer ownership": lambda c, m, s: c.transfer_ownership(m, s.address),
    "accept ownership": lambda c, m, s: c.accept_ownership(m),
}


@pytest.mark.parametrize("write", list(STRANGER_WRITES))
def test_every_write_by_a_stranger_is_refused(registry, model, stranger, write):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    with pytest.raises(AccessDenied, match=f"{stranger.address} is (not|neither) the "):
        STRANGER_WRITES[write](as_signer(registry, stranger), model, stranger)
    assert registry.version_count(model) == 1
    assert registry.get_model(model).owner == registry.signer.address


def test_a_maintainer_commits_and_revokes_until_removed(registry, model, stranger):
    maintainer = as_signer(registry, stranger)
    registry.add_maintainer(model, stranger.address)
    assert registry.is_maintainer(model, stranger.address)
    version, _ = maintainer.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    maintainer.revoke_version(model, version, "bad eval")
    assert registry.get_version(model, version).committer == stranger.address

    registry.remove_maintainer(model, stranger.address)
    assert not registry.is_maintainer(model, stranger.address)
    with pytest.raises(AccessDenied, match="neither the owner nor a maintainer of model 1"):
        maintainer.commit_version(model, ROOT_B, tensor_count=3, manifest_cid=CID)


def test_adding_a_maintainer_twice_is_refused(registry, model, stranger):
    registry.add_maintainer(model, stranger.address)
    with pytest.raises(TransactionFailed, match=f"{stranger.address} is already a maintainer of model 1"):
        registry.add_maintainer(model, stranger.address)


def test_ownership_moves_only_when_the_new_owner_accepts(registry, model, owner, stranger, chain):
    heir = chain.signers[2]
    registry.transfer_ownership(model, heir.address)
    assert registry.get_model(model).owner == owner.address
    assert registry.get_model(model).pending_owner == heir.address
    with pytest.raises(AccessDenied, match=f"{stranger.address} is not the pending owner of model 1"):
        as_signer(registry, stranger).accept_ownership(model)

    as_signer(registry, heir).accept_ownership(model)
    record = registry.get_model(model)
    assert (record.owner, record.pending_owner) == (heir.address, None)
    with pytest.raises(AccessDenied, match=f"{owner.address} is neither the owner nor a maintainer"):
        registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    as_signer(registry, heir).commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)


# --- datasets --------------------------------------------------------------------------------

def test_registering_a_dataset_twice_from_one_account_keeps_one_record(registry, owner):
    assert registry.register_dataset(DATA, "bafydata") is not None
    assert registry.register_dataset(DATA, "bafyother") is None  # the client sends nothing
    receipt = send_raw(registry, owner, registry.contract.functions.registerDataset(DATA, "bafyother"))
    assert receipt["status"] == 1 and receipt["logs"] == []  # the contract changes nothing
    registered = [e for e in registry.events() if e["event"] == "DatasetRegistered"]
    assert [(e["args"]["datasetId"], e["args"]["manifestCid"], e["args"]["registrant"]) for e in registered] == \
        [(1, "bafydata", owner.address)]
    assert registry.dataset_id(DATA, owner.address) == 1
    assert registry.get_dataset(1) == (DATA, owner.address)


def test_a_commit_naming_an_unregistered_dataset_is_refused(registry, model, owner):
    with pytest.raises(DatasetNotFound, match=f"dataset root {DATA} has no record by {owner.address}"):
        registry.commit_version(model, ROOT_A, tensor_count=3, dataset_root=DATA, manifest_cid=CID)
    with pytest.raises(DatasetNotFound, match="no dataset has id 7"):  # the contract checks too
        registry._transact(registry.contract.functions.commitVersion(
            model, keccak(text="gpt-tiny"), (bytes.fromhex(ROOT_A[2:]), 3, bytes(32)),
            (7, bytes.fromhex(DATA[2:]), owner.address), 0, 0, CID, []), "commit")


# --- versions --------------------------------------------------------------------------------

def test_a_version_records_roots_parent_committer_and_manifest(registry, model, owner):
    registry.register_dataset(DATA, "bafydata")
    first, _ = registry.commit_version(model, ROOT_A, tensor_count=3, dataset_root=DATA, manifest_cid=CID)
    second, receipt = registry.commit_version(model, ROOT_B, tensor_count=3, dataset_root=DATA, parent=(model, first), manifest_cid="bafysecond")
    assert (first, second) == (1, 2)
    record = registry.get_version(model, second)
    assert record.weights_root == ROOT_B and record.dataset_root == DATA and record.dataset_id == 1
    assert (record.tensor_count, record.files_root) == (3, None)
    assert record.parent == (model, first) and record.committer == owner.address
    assert record.manifest_cid == "bafysecond"
    assert (record.block_number, record.tx_hash) == (receipt["blockNumber"], receipt["transactionHash"].to_0x_hex())
    assert not record.revoked and record.revoker is None and record.replacement is None
    assert registry.get_version(model, first).parent is None
    assert registry.version_count(model) == 2


def test_the_same_content_twice_in_one_model_is_refused_naming_the_version(registry, model):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    with pytest.raises(DuplicateRoot, match=rf"model 1 already has this content \(weights root {ROOT_A}\) as version 1"):
        registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid="bafyretry")
    found = registry.find_version_by_root(model, ROOT_A)
    assert (found["version"], found["manifest_cid"]) == (1, CID)
    assert registry.find_version_by_root(model, ROOT_B) is None


def test_the_same_weights_root_may_start_another_model(registry, model):
    other, _ = registry.register_model("gpt-copy")
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    assert registry.commit_version(other, ROOT_A, tensor_count=3, manifest_cid=CID)[0] == 1


def test_a_parent_in_another_model_is_a_fine_tune(registry, model):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    tuned, _ = registry.register_model("gpt-tiny-chat")
    version, _ = registry.commit_version(tuned, ROOT_B, tensor_count=3, parent=(model, 1), manifest_cid=CID)
    assert registry.get_version(tuned, version).parent == (model, 1)


@pytest.mark.parametrize("parent", [(1, 2), (7, 1), (0, 1)])
def test_a_parent_that_does_not_exist_is_refused(registry, model, parent):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    with pytest.raises(ParentNotFound, match=f"parent version {parent[1]} of model {parent[0]} does not exist"):
        registry.commit_version(model, ROOT_B, tensor_count=3, parent=parent, manifest_cid=CID)


def test_a_zero_weights_root_is_refused(registry, model):
    with pytest.raises(InputInvalid, match="a Merkle root of zero is reserved"):
        registry.commit_version(model, "0x" + "00" * 32, tensor_count=3, manifest_cid=CID)


def test_a_root_of_the_wrong_length_is_refused_before_sending(registry, model):
    with pytest.raises(InputInvalid, match="weights root must be 32 bytes"):
        registry.commit_version(model, "0xabcd", tensor_count=3, manifest_cid=CID)


def test_reading_a_version_that_does_not_exist_raises_version_not_found(registry, model):
    with pytest.raises(VersionNotFound, match="model 1 has no version 3"):
        registry.get_version(model, 3)
    with pytest.raises(ModelNotFound, match="model 4 is not registered"):
        registry.get_version(4, 1)


def test_a_revoked_version_stays_readable_with_reason_revoker_and_replacement(registry, model, owner):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    registry.commit_version(model, ROOT_B, tensor_count=3, manifest_cid=CID)
    registry.revoke_version(model, 1, "trained on leaked test set", replacement=2)
    record = registry.get_version(model, 1)
    assert record.weights_root == ROOT_A and record.manifest_cid == CID
    assert (record.revoked, record.revocation_reason, record.revoker, record.replacement) == \
        (True, "trained on leaked test set", owner.address, 2)
    assert not registry.get_version(model, 2).revoked


def test_a_revocation_is_final_and_names_a_real_replacement(registry, model):
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    with pytest.raises(VersionNotFound, match="model 1 has no version 5"):
        registry.revoke_version(model, 1, "bad", replacement=5)
    with pytest.raises(InputInvalid, match="version 1 of model 1 cannot replace itself"):
        registry.revoke_version(model, 1, "bad", replacement=1)
    registry.revoke_version(model, 1, "bad")
    with pytest.raises(TransactionFailed, match="version 1 of model 1 is already revoked"):
        registry.revoke_version(model, 1, "worse")


def test_the_full_history_can_be_rebuilt_from_events_alone(registry, model, owner, stranger):
    registry.register_dataset(DATA, "bafydata")
    registry.add_maintainer(model, stranger.address)
    as_signer(registry, stranger).register_dataset(DATA, "bafydata")
    as_signer(registry, stranger).commit_version(model, ROOT_A, tensor_count=3, dataset_root=DATA, manifest_cid=CID)
    registry.commit_version(model, ROOT_B, tensor_count=3, parent=(model, 1), manifest_cid="bafytwo")
    registry.revoke_version(model, 1, "bad", 2)
    registry.remove_maintainer(model, stranger.address)
    registry.transfer_ownership(model, stranger.address)
    as_signer(registry, stranger).accept_ownership(model)

    events = registry.events()
    assert [e["event"] for e in events] == [
        "ModelRegistered", "DatasetRegistered", "MaintainerAdded", "DatasetRegistered", "VersionCommitted", "VersionCommitted",
        "VersionRevoked", "MaintainerRemoved", "OwnershipTransferStarted", "OwnershipTransferred",
        "MaintainersCleared"]
    assert [e["blockNumber"] for e in events] == sorted(e["blockNumber"] for e in events)
    committed = events[4]["args"]
    assert dict(committed) == {
        "modelId": model, "version": 1, "weightsRoot": bytes.fromhex(ROOT_A[2:]), "tensorCount": 3,
        "filesRoot": bytes(32), "datasetId": 2, "datasetRoot": bytes.fromhex(DATA[2:]),
        "datasetRegistrant": stranger.address, "parentModel": 0, "parentVersion": 0, "manifestCid": CID, "committer": stranger.address}
    assert (events[5]["args"]["parentModel"], events[5]["args"]["parentVersion"]) == (model, 1)
    assert dict(events[6]["args"]) == {"modelId": model, "version": 1, "reason": "bad", "replacement": 2,
                                       "revoker": owner.address}
    assert dict(events[9]["args"]) == {"modelId": model, "previousOwner": owner.address,
                                       "newOwner": stranger.address}
    assert dict(events[10]["args"]) == {"modelId": model, "epoch": 1}


# geth --dev runs the newest fork, Amsterdam, whose state-creation repricing (EIP-8037) makes each
# new storage slot cost several times more: the same commit costs several times more there.
def test_a_commit_costs_under_100k_gas_whatever_the_model_size(chain, registry, model, stranger):
    # The worst path: a maintainer, every field filled, a parent in another model, a full-length CID.
    registry.register_dataset(DATA, "bafydata")
    registry.add_maintainer(model, stranger.address)
    base, _ = registry.register_model("base")
    registry.commit_version(base, ROOT_C, tensor_count=3, manifest_cid=CID)
    maintainer = as_signer(registry, stranger)
    commit = maintainer.commit_version
    for filler in ("0x" + "01" * 32, "0x" + "02" * 32):
        commit(model, filler, tensor_count=3, manifest_cid=CID)
    # Version 3 and version 5 send the same number of accumulator peaks (one) and merge none.
    _, receipt = commit(model, ROOT_A, tensor_count=3, files_root=ROOT_C, dataset_root=DATA, parent=(base, 1),
                        manifest_cid=CID)
    # On every chain, geth's EIP-8037 state gas included: no commit creates a storage slot.
    assert receipt["gasUsed"] <= 100_000
    commit(model, "0x" + "03" * 32, tensor_count=3, manifest_cid=CID)
    # Only a hash of the record is kept: a far larger model costs the same but for its calldata (the
    # tensor count's two more nonzero bytes, and the peak sent, a hash whose zero bytes vary).
    _, later = commit(model, ROOT_B, tensor_count=200_000, files_root=ROOT_C, dataset_root=DATA, parent=(base, 1),
                      manifest_cid=CID)

    def calldata_gas(r):
        data = bytes(registry.w3.eth.get_transaction(r["transactionHash"])["input"])
        return sum(4 if b == 0 else 16 for b in data)
    assert later["gasUsed"] - receipt["gasUsed"] == calldata_gas(later) - calldata_gas(receipt)


# --- nonces ----------------------------------------------------------------------------------

def test_two_clients_with_one_key_both_get_their_commits_through(chain, registry, model, owner):
    second = RegistryClient.at(chain.connect(), owner, registry.address)
    cut_in = []

    class CutIn(Web3Middleware):
        """Just before `second` sends, `registry` commits with the same key, taking its nonce."""

        def wrap_make_request(self, make_request):
            def middleware(method, params):
                if method == "eth_sendRawTransaction" and not cut_in:
                    cut_in.append(registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)[0])
                return make_request(method, params)
            return middleware

    second.w3.middleware_onion.add(CutIn)
    version, _ = second.commit_version(model, ROOT_B, tensor_count=3, manifest_cid=CID)
    assert (cut_in, version) == ([1], 2)
    assert [registry.get_version(model, v).weights_root for v in (1, 2)] == [ROOT_A, ROOT_B]


def test_a_version_committed_while_the_history_is_read_is_a_race_not_a_lie(registry, model, stranger):
    # Another process in the same home commits between this reader's count and its logs (the full
    # suite's commit-and-gc race saw it): the reader reads again instead of calling the node a liar.
    registry.commit_version(model, ROOT_A, tensor_count=3, manifest_cid=CID)
    reader = RegistryClient.at(registry.w3, None, registry.address, from_block=registry.from_block)
    read, raced = reader._checked_history, []

    def commit_first(*args):
        if not raced:
            raced.append(registry.commit_version(model, ROOT_B, tensor_count=3, parent=(model, 1), manifest_cid=CID))
        return read(*args)

    reader._checked_history = commit_first
    assert reader.get_version(model, 1).weights_root == ROOT_A
    assert raced and reader.version_count(model) == 2
    assert reader.get_version(model, 2).weights_root == ROOT_B
