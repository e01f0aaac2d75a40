"""Diffs by tensor name between checkpoints and manifests."""

import random
import time

import pytest

from modelreg.errors import InputInvalid
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import canonical_json, checkpoint_manifest, dataset_manifest
from modelreg.formats.seal import seal_checkpoint, seal_dataset
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes


@pytest.fixture
def pair(tmp_path):
    tensors = random_tensors(random.Random(12), 6)
    names = list(tensors)
    after = dict(tensors)
    del after[names[0]]
    after["new.tensor"] = ("F32", [2], bytes(8))
    dtype, shape, data = after[names[1]]
    after[names[1]] = (dtype, shape, bytes(len(data))) if any(data) else (dtype, shape, b"\1" * len(data))
    after[names[2]] = ("U8", [len(tensors[names[2]][2])], tensors[names[2]][2])
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(safetensors_bytes(tensors))
    b.write_bytes(safetensors_bytes(after))
    return a, b, names


def _expected(names):
    return {"added": ["new.tensor"], "removed": [names[0]],
            "changed": sorted([{"name": names[1], "parts": ["sha256"]},
                               {"name": names[2], "parts": ["dtype", "shape"]}], key=lambda c: c["name"])}


def test_two_checkpoints_give_added_removed_and_changed_by_name(pair):
    a, b, names = pair
    assert diff_tensors(a, b).as_dict() == _expected(names)


def test_a_checkpoint_and_a_manifest_give_the_same_diff(pair, tmp_path):
    a, b, names = pair
    (tmp_path / "b.json").write_bytes(canonical_json(checkpoint_manifest(seal_checkpoint(b))))
    assert diff_tensors(a, tmp_path / "b.json").as_dict() == _expected(names)
    assert diff_tensors(checkpoint_manifest(seal_checkpoint(a)), b).as_dict() == _expected(names)


def test_two_manifests_diff_in_milliseconds_without_the_checkpoints(pair, tmp_path):
    a, b, names = pair
    manifests = []
    for path in (a, b):
        manifests.append(tmp_path / f"{path.stem}.json")
        manifests[-1].write_bytes(canonical_json(checkpoint_manifest(seal_checkpoint(path))))
        path.unlink()  # nothing left to hash
    start = time.perf_counter()
    assert diff_tensors(*manifests).as_dict() == _expected(names)
    assert time.perf_counter() - start < 0.5


def test_a_checkpoint_compared_with_itself_is_identical(pair):
    a, _, _ = pair
    assert diff_tensors(a, a).identical


def test_a_dataset_manifest_is_refused_by_the_tensor_diff(pair, tmp_path):
    a, _, _ = pair
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(InputInvalid, match="not a checkpoint manifest"):
        diff_tensors(a, dataset_manifest(seal_dataset(tmp_path / "d")))
