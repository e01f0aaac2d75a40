"""`modelreg audit find-root`: who published these weights first, across every model of the registry."""

import json

import pytest

from modelreg.service.config import load_config
from modelreg.service.connect import connect
from tests.cli.test_errors import fails

ROOT = "0x" + "5e" * 32
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.fixture
def copied(modelreg):
    """`original` commits ROOT, `other` commits something else, then `copycat` commits ROOT too and
    revokes it."""
    for name in ("original", "other", "copycat"):
        modelreg("model", "register", name)
    client = connect(modelreg.home, load_config(modelreg.home), write=True).client
    for name, root in (("original", ROOT), ("other", "0x" + "77" * 32), ("copycat", ROOT)):
        client.commit_version(client.model_id(name), root, tensor_count=4, manifest_cid=CID)
    client.revoke_version(client.model_id("copycat"), 1, "copied weights")
    return modelreg


def test_find_root_lists_every_version_with_those_weights_earliest_first(copied):
    found = json.loads(copied("audit", "find-root", ROOT, "--json").output)
    assert [(v["name"], v["version"], v["tensor_count"], v["revoked"]) for v in found] == \
        [("original", 1, 4, False), ("copycat", 1, 4, True)]
    assert found[0]["block"] < found[1]["block"]
    table = copied("audit", "find-root", ROOT).output
    assert table.index("original") < table.index("copycat")


def test_find_root_says_when_no_version_has_the_root_and_exits_1(copied):
    nothing = "0x" + "ab" * 32
    assert "No version on this registry has weights root 0x" in copied("audit", "find-root", nothing, expect=1).output
    assert copied("audit", "find-root", nothing, "--json", expect=1).output == "[]\n"


def test_find_root_refuses_a_root_that_is_not_32_bytes_of_hex(copied):
    fails(copied, "audit", "find-root", "0xnothex", match="weights root must be 32 bytes as hex")
