"""Manifests: canonical bytes, the exact shapes other code reads, and refusal of anything inconsistent."""

import json
import random

import pytest

from modelreg.errors import ManifestInvalid
from modelreg.formats.manifest import (
    LINEAGE_KEYS,
    canonical_json,
    checkpoint_manifest,
    dataset_manifest,
    load_manifest,
    load_sealed,
)
from modelreg.formats.seal import seal_checkpoint, seal_dataset
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes

LINEAGE = {"model": "gpt-tiny", "step": 100, "parent": {"model_id": 1, "version": 2},
           "dataset_root": "0x" + "ab" * 32, "config": {"n_embd": 64, "lr": 3e-4},
           "code_revision": "abc123", "metrics": {"loss": 2.5}, "environment": {"torch": "2.13", "device": "cpu"},
           "artifacts": {"tokenizer.json": {"sha256": "0x" + "cd" * 32, "size": 10}}}


@pytest.fixture
def sealed(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes({**random_tensors(random.Random(11), 4), "ü": ("F32", [], bytes(4))}))
    return seal_checkpoint(path)


def test_canonical_json_sorts_keys_keeps_utf8_and_drops_whitespace():
    assert canonical_json({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ManifestInvalid, match="canonical JSON cannot carry"):
        canonical_json({"loss": float("nan")})


def test_a_checkpoint_manifest_has_the_shared_shape_and_round_trips(sealed):
    manifest = checkpoint_manifest(sealed, **LINEAGE)
    assert manifest["manifest"] == "modelreg-checkpoint-manifest-v1"
    assert manifest["format"] == "modelreg-tensors-v1" and manifest["root"] == sealed.root
    assert set(manifest) == {"manifest", "format", "root", "leaves", *LINEAGE_KEYS}
    assert manifest["leaves"][0] == {"name": sealed.leaves[0].name, "dtype": sealed.leaves[0].dtype,
                                     "shape": list(sealed.leaves[0].shape), "sha256": sealed.leaves[0].sha256}
    assert load_manifest(canonical_json(manifest)) == manifest
    assert load_sealed(manifest)[1] == sealed


def test_a_sealed_only_manifest_has_no_lineage_keys(sealed):
    assert set(checkpoint_manifest(sealed)) == {"manifest", "format", "root", "leaves"}


def test_lineage_is_all_or_nothing_and_unknown_keys_are_refused(sealed):
    with pytest.raises(ManifestInvalid, match=r"lacks lineage keys \['parent'"):
        checkpoint_manifest(sealed, **{k: v for k, v in LINEAGE.items() if k != "parent"})
    with pytest.raises(ManifestInvalid, match=r"unknown keys \['epoch'\]"):
        checkpoint_manifest(sealed, **LINEAGE, epoch=1)
    with pytest.raises(ManifestInvalid, match="parent 3 must be null"):
        checkpoint_manifest(sealed, **{**LINEAGE, "parent": 3})


def test_a_dataset_manifest_round_trips_through_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    manifest = dataset_manifest(seal_dataset(tmp_path / "d"))
    assert manifest == {"manifest": "modelreg-dataset-manifest-v1", "format": "modelreg-files-v1",
                        "root": manifest["root"], "leaves": [{"path": "x.txt", "size": 1,
                                                              "sha256": manifest["leaves"][0]["sha256"]}]}
    (tmp_path / "m.json").write_bytes(canonical_json(manifest))
    assert load_manifest(tmp_path / "m.json") == manifest


@pytest.mark.parametrize("change, problem", [
    (lambda m: m["leaves"][0].update(sha256="0x" + "00" * 32), "leaves give"),
    (lambda m: m["leaves"][0].update(shape=[9]), "leaves give"),
    (lambda m: m.update(root="0x" + "11" * 32), "leaves give"),
    (lambda m: m.update(format="modelreg-files-v1"), "must have format 'modelreg-tensors-v1'"),
    (lambda m: m.update(manifest="something-v9"), "unknown manifest 'something-v9'"),
    (lambda m: m["leaves"].append(dict(m["leaves"][0])), "twice"),
    (lambda m: m["leaves"][0].update(dtype="F128"), "not a safetensors dtype"),
    (lambda m: m["leaves"][0].pop("shape"), "must have exactly the keys"),
    (lambda m: m["leaves"][0].update(sha256="abc"), "64 lowercase hex digits"),
    (lambda m: m.update(leaves=[]), "at least one leaf"),
])
def test_a_manifest_that_disagrees_with_itself_is_refused(sealed, change, problem):
    manifest = json.loads(json.dumps(checkpoint_manifest(sealed)))
    change(manifest)
    with pytest.raises(ManifestInvalid, match=problem):
        load_manifest(canonical_json(manifest))


def test_unreadable_or_non_json_manifests_are_refused(tmp_path):
    with pytest.raises(ManifestInvalid, match="cannot be read"):
        load_manifest(tmp_path / "none.json")
    with pytest.raises(ManifestInvalid, match="is not UTF-8 JSON"):
        load_manifest(b"{not json")
    with pytest.raises(ManifestInvalid, match="NaN"):
        load_manifest(b'{"loss": NaN}')
