"""ModelRegistry v3: the accumulator the client checks, names, revocation bits, and v2 still readable."""

import pytest
from eth_utils import keccak
from web3.middleware import Web3Middleware

from modelreg.chain.client import RegistryClient
from modelreg.errors import AccumulatorMismatch, ChainUnavailable, ModelNameInvalid, RootMismatch
from modelreg.formats.merkle import StandardMerkleTree
from tests.conftest import anvil_chain, eth_tester_chain

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
TYPES = ["string", "string", "uint256[]", "bytes32"]


def _tree(i: int) -> StandardMerkleTree:
    return StandardMerkleTree.of([[f"w{j}", "F32", [2, i], "0x" + bytes([i, j]).hex() * 16] for j in range(3)], TYPES)


@pytest.fixture(scope="module")
def tester():
    with eth_tester_chain() as chain:
        yield chain


@pytest.fixture
def v3(tester):
    return RegistryClient.deploy(tester.w3, tester.signers[0])


def test_every_version_of_a_model_proves_against_its_accumulator(v3):
    model, _ = v3.register_model("gpt-tiny")
    trees = [_tree(i) for i in range(1, 8)]  # 7 versions: peaks of heights 2, 1 and 0
    for tree in trees:
        v3.commit_version(model, tree.root, tensor_count=3, manifest_cid=CID)
    assert v3.version_count(model) == 7 and v3.contract.functions.version().call() == 3
    for version, tree in enumerate(trees, start=1):
        assert v3.verify_tensor(model, version, tree.values[1], tree.proof(1))
        assert not v3.verify_tensor(model, version, trees[version % 7].values[1], trees[version % 7].proof(1))


def test_stale_peaks_are_refused_by_the_contract(v3, tester):
    model, _ = v3.register_model("gpt-tiny")
    v3.commit_version(model, _tree(1).root, tensor_count=3, manifest_cid=CID)
    stale = []  # the peaks before version 1: another commit came first
    fn = v3.contract.functions.commitVersion(model, keccak(text="gpt-tiny"), (bytes.fromhex(_tree(2).root[2:]), 3,
                                             bytes(32)), (0, bytes(32), "0x" + "00" * 20), 0, 0, CID, stale)
    with pytest.raises(AccumulatorMismatch, match=f"the accumulator of model {model} moved"):
        v3._transact(fn, "commit")


@pytest.mark.parametrize("name", ["gpt_tiny", "gpt.tiny", "3", "3b", ".", "..", "a--b", "a-", "-a", "Gpt", "x" * 65])
def test_names_that_pass_for_ids_or_look_alikes_are_refused_by_the_contract_too(v3, name):
    with pytest.raises(ModelNameInvalid, match="not a valid model name"):
        v3.register_model(name)
    with pytest.raises(ModelNameInvalid, match="not a valid model name"):
        v3._transact(v3.contract.functions.registerModel(name, ""), "register")
    assert v3.model_count() == 0


def test_the_error_suggests_the_canonical_name(v3):
    v3.register_model("gpt-tiny")
    with pytest.raises(ModelNameInvalid, match="use 'gpt-tiny'"):
        v3.register_model("gpt_tiny")
    assert v3.model_id("gpt-tiny") == 1 and v3.get_model(1).name == "gpt-tiny"


@pytest.mark.slow
def test_revocation_bits_past_the_first_32_versions(v3):
    model, _ = v3.register_model("many")
    for i in range(1, 35):
        v3.commit_version(model, "0x" + i.to_bytes(32, "big").hex(), tensor_count=1, manifest_cid=CID)
    v3.revoke_version(model, 33, "bad", replacement=34)
    v3.revoke_version(model, 32, "bad too")
    assert [v for v in range(1, 35) if v3.is_revoked(model, v)] == [32, 33]
    record = v3.get_version(model, 33)
    assert (record.revoked, record.revocation_reason, record.replacement) == (True, "bad", 34)


def test_a_v2_registry_is_still_read_and_written(tester):
    deployed = RegistryClient.deploy(tester.w3, tester.signers[0], interface_version=2)
    old = RegistryClient.at(tester.w3, tester.signers[0], deployed.address)
    assert old.interface_version == 2
    model, _ = old.register_model("gpt-tiny")
    tree = _tree(1)
    version, _ = old.commit_version(model, tree.root, tensor_count=3, manifest_cid=CID)
    assert old.verify_tensor(model, version, tree.values[0], tree.proof(0))
    old.revoke_version(model, version, "old")
    record = old.get_version(model, version)
    assert (record.weights_root, record.revoked, old.get_model(model).name) == (tree.root, True, "gpt-tiny")


class _LyingNode(Web3Middleware):
    """A node that changes the tensor count in every VersionCommitted log it returns (test double)."""

    def wrap_make_request(self, make_request):
        topic = "0x" + keccak(text="VersionCommitted(uint256,uint256,bytes32,uint256,bytes32,uint256,bytes32,"
                                   "address,uint256,uint256,string,address)").hex()

        def middleware(method, params):
            response = make_request(method, params)
            if method != "eth_getLogs":
                return response
            changed = []
            for log in response["result"]:
                log = dict(log)
                first = log["topics"][0]
                if (first if isinstance(first, str) else "0x" + bytes(first).hex()) == topic:
                    data = bytes.fromhex(log["data"][2:]) if isinstance(log["data"], str) else bytes(log["data"])
                    count = int.from_bytes(data[:32], "big") + 1
                    log["data"] = "0x" + (count.to_bytes(32, "big") + data[32:]).hex()
                changed.append(log)
            return {**response, "result": changed}
        return middleware


@pytest.mark.slow
def test_a_node_that_changes_or_hides_a_version_log_is_caught_by_the_accumulator():
    with anvil_chain() as chain:
        honest = RegistryClient.deploy(chain.w3, chain.signers[0])
        model, _ = honest.register_model("gpt-tiny")
        for i in (1, 2, 3):
            honest.commit_version(model, _tree(i).root, tensor_count=3, manifest_cid=CID)
        lied_to = RegistryClient.at(chain.connect(), None, honest.address)
        lied_to.w3.middleware_onion.add(_LyingNode)
        with pytest.raises(RootMismatch, match="do not hash to its on-chain accumulator"):
            lied_to.get_version(model, 2)

        hidden = RegistryClient.at(chain.connect(), None, honest.address, from_block=chain.w3.eth.block_number)
        with pytest.raises(ChainUnavailable, match="use a node that keeps all logs"):
            hidden.get_version(model, 1)
