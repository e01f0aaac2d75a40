"""Each hole the adversarial review of ModelRegistry v1 found, replayed against v3 (the client deploys
v3): it does no harm.

Every test runs on each chain in tests/conftest.py (eth-tester, anvil, the devnet, geth).
"""

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.client import RegistryClient
from modelreg.errors import (
    AccessDenied,
    ContractIncompatible,
    DuplicateRoot,
    InputInvalid,
    ModelNameInvalid,
    ModelNameTaken,
    RootMismatch,
)
from modelreg.formats.manifest import canonical_json
from modelreg.formats.merkle import StandardMerkleTree
from modelreg.formats.seal import seal_checkpoint
from modelreg.service import audit
from modelreg.service.verify import MISMATCH, verify_checkpoint
from tests.registry.chain.test_client import as_signer

ROOT_A = "0x" + "a1" * 32
ROOT_B = "0x" + "b2" * 32
DATA = "0x" + "da" * 32
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
TENSOR_TYPES = ["string", "string", "uint256[]", "bytes32"]


@pytest.fixture
def owner(chain):
    return chain.signers[0]


@pytest.fixture
def insider(chain):
    """A key the owner once trusted: a seller's, or a maintainer's that leaked."""
    return chain.signers[1]


@pytest.fixture
def model(registry):
    return registry.register_model("gpt-tiny", "")[0]


def commit(client, model_id, root, **kw):
    return client.commit_version(model_id, root, tensor_count=kw.pop("tensor_count", 3), manifest_cid=CID, **kw)[0]


# --- 1. maintainers surviving an ownership transfer ----------------------------------------------

def test_a_sellers_maintainer_key_loses_its_rights_when_the_buyer_accepts(registry, model, owner, insider, chain):
    buyer = as_signer(registry, chain.signers[2])
    registry.add_maintainer(model, insider.address)  # the seller keeps a key in before the sale
    registry.transfer_ownership(model, buyer.signer.address)
    receipt = buyer.accept_ownership(model)

    assert [e["event"] for e in registry._decoded(receipt, "MaintainersCleared")] == ["MaintainersCleared"]
    assert not registry.is_maintainer(model, insider.address)
    assert registry.get_model(model).epoch == 1
    seller = as_signer(registry, insider)
    with pytest.raises(AccessDenied, match=f"{insider.address} is neither the owner nor a maintainer"):
        commit(seller, model, ROOT_A)
    version = commit(buyer, model, ROOT_B)
    with pytest.raises(AccessDenied, match=f"{insider.address} is neither the owner nor a maintainer"):
        seller.revoke_version(model, version, "sabotage")
    buyer.add_maintainer(model, insider.address)  # the buyer may trust it again, explicitly
    assert registry.is_maintainer(model, insider.address)


# --- 2. a maintainer burning the owner's releases ------------------------------------------------

def test_a_maintainer_cannot_revoke_the_owners_release_but_may_revoke_its_own(registry, model, insider):
    registry.add_maintainer(model, insider.address)
    maintainer = as_signer(registry, insider)
    release = commit(registry, model, ROOT_A)
    with pytest.raises(AccessDenied, match=f"{insider.address} did not commit version {release} of model"):
        maintainer.revoke_version(model, release, "leaked key")
    assert not registry.get_version(model, release).revoked

    own = commit(maintainer, model, ROOT_B)
    maintainer.revoke_version(model, own, "my mistake")
    assert registry.get_version(model, own).revoker == insider.address


def test_the_owner_may_revoke_a_maintainers_version(registry, model, owner, insider):
    registry.add_maintainer(model, insider.address)
    version = commit(as_signer(registry, insider), model, ROOT_A)
    registry.revoke_version(model, version, "not approved")
    assert registry.get_version(model, version).revoker == owner.address


# --- revocation is not a burn ----------------------------------------------------------------

def test_revoked_weights_can_be_committed_again_as_a_new_version(registry, model, owner, insider):
    registry.add_maintainer(model, insider.address)
    first = commit(as_signer(registry, insider), model, ROOT_A)
    registry.revoke_version(model, first, "revoked by mistake")
    again = commit(registry, model, ROOT_A)
    assert again == first + 1

    old, new = registry.get_version(model, first), registry.get_version(model, again)
    assert (old.weights_root, old.committer, old.revoked) == (ROOT_A, insider.address, True)  # history kept
    assert (new.weights_root, new.committer, new.revoked) == (ROOT_A, owner.address, False)
    with pytest.raises(DuplicateRoot, match=f"as version {again}, not revoked"):
        commit(registry, model, ROOT_A)
    assert registry.find_version_by_root(model, ROOT_A)["version"] == again


# --- 3. datasets front-run by a first registrant ---------------------------------------------------

def test_a_first_registrant_cannot_poison_a_dataset(registry, model, owner, insider, tmp_path):
    attacker = as_signer(registry, insider)
    attacker.register_dataset(DATA, "bafyattackersmanifest")  # front-runs the honest registration
    receipt = registry.register_dataset(DATA, "bafyhonestmanifest")
    assert receipt is not None  # the honest registration is a record of its own, not a silent no-op
    (event,) = registry._decoded(receipt, "DatasetRegistered")
    assert dict(event["args"]) == {"datasetId": 2, "root": bytes.fromhex(DATA[2:]), "registrant": owner.address,
                                   "manifestCid": "bafyhonestmanifest"}

    version = commit(registry, model, ROOT_A, dataset_root=DATA)
    record = registry.get_version(model, version)
    assert (record.dataset_root, record.dataset_id) == (DATA, 2)
    events = audit.EventIndex.of(tmp_path, registry).events()
    (entry,) = audit.history(events, model)
    assert audit.datasets(events)[entry["dataset_id"]]["registrant"] == owner.address
    assert audit.datasets(events)[entry["dataset_id"]]["manifest_cid"] == "bafyhonestmanifest"


# --- 4. a single proof and duplicate tensor names ----------------------------------------------

def test_a_tree_with_a_duplicate_tensor_name_is_caught_by_its_tensor_count_and_manifest(registry, model):
    # Built elsewhere: two leaves named lm_head.weight with different bytes. modelreg never seals this.
    values = [["lm_head.weight", "F32", [2], "0x" + "01" * 32], ["lm_head.weight", "F32", [2], "0x" + "02" * 32]]
    tree = StandardMerkleTree.of(values, TENSOR_TYPES)
    version = commit(registry, model, tree.root, tensor_count=2)
    # Each leaf alone proves: a single proof says "in the tree", not "the only tensor of that name".
    assert all(registry.verify_tensor(model, version, v, tree.proof(i)) for i, v in enumerate(values))
    # A manifest of that tree is refused, so `verify` and `audit` never accept it as a model.
    manifest = {"manifest": "modelreg-checkpoint-manifest-v1", "format": "modelreg-tensors-v1", "root": tree.root,
                "leaves": [{"name": n, "dtype": d, "shape": s, "sha256": h} for n, d, s, h in values]}
    claimed = {"weights_root": tree.root, "tensor_count": 2, "files_root": None, "manifest_cid": "bafkqaaa"}
    status, _ = audit.check_manifest(claimed, lambda cid: canonical_json(manifest))
    assert status.startswith("manifest invalid") and "twice" in status


# --- 5. empty multiproofs ----------------------------------------------------------------------

def test_an_empty_multiproof_is_refused(registry, model):
    version = commit(registry, model, ROOT_A)
    with pytest.raises(InputInvalid, match="a multiproof must prove at least one leaf"):
        registry.verify_tensors(model, version, [], [ROOT_A], [])


# --- 6. names that only look different -------------------------------------------------------------

@pytest.mark.parametrize("name", ["GPT-tiny", "gpt-tiny ", "gpt\u2011tiny", "gpt-tiny\u200b", "x" * 65])
def test_a_look_alike_name_is_refused_by_the_contract_and_the_client(registry, model, owner, name):
    nonce = registry.w3.eth.get_transaction_count(owner.address)
    with pytest.raises(ModelNameInvalid, match="is not a valid model name .*; use '"):
        registry.register_model(name)
    assert registry.w3.eth.get_transaction_count(owner.address) == nonce  # refused before sending
    with pytest.raises(ModelNameInvalid, match="is not a valid model name"):
        registry._transact(registry.contract.functions.registerModel(name, ""), "register")  # the contract too
    assert registry.model_count() == 1


def test_the_suggested_name_of_a_look_alike_is_the_taken_name(registry, model):
    with pytest.raises(ModelNameInvalid, match="use 'gpt-tiny'"):
        registry.register_model("GPT-Tiny")
    with pytest.raises(ModelNameTaken, match="a model named 'gpt-tiny' already exists"):
        registry.register_model("gpt-tiny")


# --- 7. the smaller holes ----------------------------------------------------------------------

def test_a_replacement_must_not_be_revoked_itself(registry, model):
    first, second = commit(registry, model, ROOT_A), commit(registry, model, ROOT_B)
    registry.revoke_version(model, second, "bad")
    with pytest.raises(InputInvalid, match=f"version {second} of model {model} is revoked itself"):
        registry.revoke_version(model, first, "worse", replacement=second)


@pytest.mark.parametrize("field, call", [
    ("metadata", lambda c, m: c.register_model("long-meta", "m" * 4097)),
    ("manifestCid", lambda c, m: c.commit_version(m, ROOT_A, tensor_count=1, manifest_cid="b" * 129)),
    ("manifestCid", lambda c, m: c.register_dataset(DATA, "b" * 129)),
    ("reason", lambda c, m: c.revoke_version(m, commit(c, m, ROOT_B), "r" * 513)),
])
def test_every_string_has_a_length_cap(registry, model, field, call):
    with pytest.raises(InputInvalid, match=f"the {field} is \\d+ bytes long; the registry takes at most"):
        call(registry, model)


def test_a_version_has_at_least_one_tensor(registry, model):
    with pytest.raises(InputInvalid, match="a version has 1 to 4294967295 tensors, not 0"):
        registry.commit_version(model, ROOT_A, tensor_count=0, manifest_cid=CID)


# --- the version check before use --------------------------------------------------------------

def test_a_contract_without_the_interface_version_is_refused(registry, owner):
    # Init code that deploys a one-byte runtime (STOP): code at the address, but no version().
    w3 = registry.w3
    tx = {"from": owner.address, "data": "0x6001600c60003960016000f300", "gas": 100_000,
          "nonce": w3.eth.get_transaction_count(owner.address, "pending"), "chainId": w3.eth.chain_id,
          "maxFeePerGas": 2 * w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9}
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(owner.sign_transaction(tx).raw_transaction))
    with pytest.raises(ContractIncompatible, match="is not a released ModelRegistry: 1 bytes hashing to 0x"):
        RegistryClient.at(w3, owner, receipt["contractAddress"])


def test_roots_that_are_not_the_committed_ones_are_refused_by_the_verify_functions(registry, model):
    version = commit(registry, model, ROOT_A)
    content = (bytes.fromhex(ROOT_A[2:]), 3, bytes.fromhex(ROOT_B[2:]))  # a files root never committed
    leaf = ("w", "F32", [1], bytes(32))
    version_proof = list(registry._version_proof(model, version))
    version_proof[3] = (content, *version_proof[3][1:])
    with pytest.raises(RootMismatch, match=f"not those committed for version {version} of model {model}"):
        registry._call(registry.contract.functions.verifyTensor(tuple(version_proof), leaf, []))


def test_a_file_whose_root_matches_a_version_with_another_tensor_count_does_not_verify(registry, model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros(2, dtype=np.float32), "b": np.ones(2, dtype=np.float32)}, str(path))
    sealed = seal_checkpoint(path)
    version = commit(registry, model, sealed.root, tensor_count=3)  # a committer claiming a third tensor
    verdict = verify_checkpoint(path, registry, [], model, version=version)
    assert verdict.status == MISMATCH and not verdict.ok
