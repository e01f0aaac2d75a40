"""Training transcripts: the v2 manifest carries one, v1 stays readable, the batch tree matches the JS library."""

import json
import random

import pytest

from modelreg.errors import ManifestInvalid
from modelreg.formats.manifest import canonical_json, checkpoint_manifest, load_manifest
from modelreg.formats.seal import seal_checkpoint
from modelreg.formats.transcript import (
    TRANSCRIPT_FORMAT,
    TRANSCRIPT_FORMAT_DDP,
    BatchLeaf,
    batches_document,
    batches_root,
    config_sha256,
    load_batches,
)
from tests.nodejs import node_available, run_node
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes
from tests.registry.formats.test_manifest import LINEAGE

LEAVES = [BatchLeaf(s, (0, 2), (17 * s, 5), "0x" + f"{s:02x}" * 32) for s in (1, 2, 3)]
TRANSCRIPT = {"format": TRANSCRIPT_FORMAT, "first_step": 1, "last_step": 3, "seed": 1337,
              "config_sha256": config_sha256({"n_embd": 64}),
              "batches": {"root": batches_root(LEAVES), "count": 3, "cid": "bafkreib"},
              "parent": None, "numerics": {"threads": 2, "aten_cpu_capability": "avx2"},
              "dataset_files": {"a.txt": "bafkreia"}}


@pytest.fixture
def sealed(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(random_tensors(random.Random(3), 3)))
    return seal_checkpoint(path)


def test_a_manifest_with_a_transcript_is_a_v2_and_round_trips(sealed):
    manifest = checkpoint_manifest(sealed, **LINEAGE, transcript=TRANSCRIPT)
    assert manifest["manifest"] == "modelreg-checkpoint-manifest-v2"
    assert load_manifest(canonical_json(manifest)) == manifest


def test_a_v1_manifest_without_a_transcript_stays_readable(sealed):
    manifest = checkpoint_manifest(sealed, **LINEAGE)
    assert manifest["manifest"] == "modelreg-checkpoint-manifest-v1"
    assert load_manifest(canonical_json(manifest))["root"] == sealed.root


def test_a_v2_manifest_without_its_transcript_is_refused(sealed):
    manifest = {**checkpoint_manifest(sealed, **LINEAGE), "manifest": "modelreg-checkpoint-manifest-v2"}
    with pytest.raises(ManifestInvalid, match=r"lacks lineage keys \['transcript'\]"):
        load_manifest(manifest)


def test_a_transcript_on_a_v1_manifest_is_an_unknown_key(sealed):
    manifest = {**checkpoint_manifest(sealed, **LINEAGE), "transcript": TRANSCRIPT}
    with pytest.raises(ManifestInvalid, match=r"unknown keys \['transcript'\]"):
        load_manifest(manifest)


@pytest.mark.parametrize("change, match", [
    ({"first_step": 4}, "first_step <= last_step"),
    ({"parent": {"step": 1}}, "transcript parent"),
    ({"batches": {"root": "0x12"}}, "transcript batches"),
    ({"format": "modelreg-training-transcript-v9"}, "is not 'modelreg-training-transcript-v1'"),
])
def test_a_malformed_transcript_is_refused(sealed, change, match):
    with pytest.raises(ManifestInvalid, match=match):
        checkpoint_manifest(sealed, **LINEAGE, transcript={**TRANSCRIPT, **change})


def test_a_ddp_transcript_is_a_v3_naming_its_world_size(sealed):
    ddp = {**TRANSCRIPT, "format": TRANSCRIPT_FORMAT_DDP, "world_size": 2}
    manifest = checkpoint_manifest(sealed, **LINEAGE, transcript=ddp)
    assert load_manifest(canonical_json(manifest))["transcript"]["world_size"] == 2
    for bad, match in [({**ddp, "world_size": 1}, "world_size 1 must be an integer of at least 2"),
                       ({**ddp, "world_size": True}, "world_size True must be"),
                       ({**TRANSCRIPT, "format": TRANSCRIPT_FORMAT_DDP}, "exactly the keys"),
                       ({**TRANSCRIPT, "world_size": 2}, "exactly the keys")]:  # a v1 names none
        with pytest.raises(ManifestInvalid, match=match):
            checkpoint_manifest(sealed, **LINEAGE, transcript=bad)


def test_batch_leaves_load_only_under_their_committed_root():
    doc = json.loads(canonical_json(batches_document(LEAVES)))
    assert load_batches(canonical_json(doc), doc["root"]) == tuple(LEAVES)
    doc["leaves"][1]["offsets"][0] += 1  # one sample moved by one token
    with pytest.raises(ManifestInvalid, match="the batch leaves give root"):
        load_batches(canonical_json(doc), batches_root(LEAVES))


@pytest.mark.skipif(not node_available(), reason="node and node_modules are needed")
def test_the_batch_root_equals_openzeppelins_standard_merkle_tree():
    reference = run_node("oz_merkle.mjs", {"types": list(BatchLeaf.TYPES), "values": [x.values() for x in LEAVES],
                                           "proofs": False})
    assert reference["root"] == batches_root(LEAVES)
