"""Ingest: one read of a model gives both its seal and its IPFS DAG, identical to doing each alone."""

import json
import random

import pytest

from modelreg.errors import CheckpointInvalid, ModelInvalid
from modelreg.formats import model as model_module
from modelreg.formats.model import seal_model
from modelreg.formats.seal import FileHasher, TensorHasher, seal_checkpoint
from modelreg.ipfs import unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs
from modelreg.service.ingest import seal_and_add
from tests.registry.formats.seal_helpers import random_tensors, safetensors_bytes

PROFILES = [unixfs.V1_2025, unixfs.V0_2015]


def model_dir(path, big: bool = False):
    rng = random.Random(5)
    tensors = random_tensors(rng, 12)
    if big:  # tensors that straddle chunk boundaries
        tensors["big.a"] = ("U8", [3 << 20], rng.randbytes(3 << 20))
        tensors["big.b"] = ("F32", [1, 0], b"")
    names = list(tensors)
    path.mkdir(parents=True)
    (path / "model-00001-of-00002.safetensors").write_bytes(
        safetensors_bytes({n: tensors[n] for n in names[:7]}))
    (path / "model-00002-of-00002.safetensors").write_bytes(
        safetensors_bytes({n: tensors[n] for n in names[7:]}))
    weight_map = {n: "model-00001-of-00002.safetensors" if i < 7 else "model-00002-of-00002.safetensors"
                  for i, n in enumerate(names)}
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (path / "config.json").write_text('{"n_layer": 2}')
    (path / "empty.txt").write_bytes(b"")
    (path / "sub").mkdir()
    (path / "sub" / "optimizer.pt").write_bytes(rng.randbytes(70_000))
    return path


@pytest.fixture
def no_second_read(monkeypatch):
    """Make any second read of a file by the sealer fail the test."""
    def refuse(path, *args, **kwargs):
        raise AssertionError(f"{path} was read a second time")

    monkeypatch.setattr(model_module, "seal_checkpoint", refuse)
    monkeypatch.setattr(model_module, "sha256_file", refuse)
    monkeypatch.setattr(model_module, "seal_weights_file", refuse)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_one_read_gives_the_seal_and_the_cid_of_sealing_and_adding_separately(tmp_path, profile):
    d = model_dir(tmp_path / "m", big=True)
    expected_seal = seal_model(d)
    expected_cid = EmbeddedIpfs(tmp_path / "other", profile).cid_of(d)
    ipfs = EmbeddedIpfs(tmp_path / "home", profile)
    sealed, cid = seal_and_add(d, ipfs)
    assert sealed == expected_seal and cid == expected_cid
    assert ipfs.pins() == [cid]


def test_the_seal_reads_no_file_a_second_time(tmp_path, no_second_read):
    d = model_dir(tmp_path / "m")
    sealed, cid = seal_and_add(d, EmbeddedIpfs(tmp_path / "home"))
    assert sealed.tensor_count == 12 and len(sealed.file_leaves) == 3


def test_a_single_file_is_read_once_too(tmp_path, no_second_read):
    data = safetensors_bytes(random_tensors(random.Random(2), 5))
    (tmp_path / "model.safetensors").write_bytes(data)
    sealed, cid = seal_and_add(tmp_path / "model.safetensors", EmbeddedIpfs(tmp_path / "home"))
    assert sealed.tensors == seal_checkpoint(tmp_path / "model.safetensors")
    assert cid == EmbeddedIpfs(tmp_path / "x").cid_of(tmp_path / "model.safetensors")


def test_an_invalid_model_raises_the_sealers_error_and_pins_nothing(tmp_path):
    d = model_dir(tmp_path / "m")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "model-00002-of-00002.safetensors"
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    ipfs = EmbeddedIpfs(tmp_path / "home")
    with pytest.raises(ModelInvalid, match=f"maps tensor '{first}' to model-00002"):
        seal_and_add(d, ipfs)
    assert ipfs.pins() == []
    assert ipfs.gc() > 0 and not list(ipfs.store.cids())


def test_a_broken_shard_gets_the_same_error_as_sealing_it_alone(tmp_path):
    d = model_dir(tmp_path / "m")
    shard = d / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(CheckpointInvalid) as alone:
        seal_model(d)
    with pytest.raises(CheckpointInvalid) as together:
        seal_and_add(d, EmbeddedIpfs(tmp_path / "home"))
    assert str(together.value) == str(alone.value)


@pytest.mark.parametrize("chunk", [1, 7, 8, 100, 1 << 20])
def test_the_tensor_hasher_equals_seal_checkpoint_whatever_the_chunking(tmp_path, chunk):
    tensors = random_tensors(random.Random(chunk), 20)
    tensors["empty"] = ("F32", [0], b"")
    data = safetensors_bytes(tensors, metadata={"format": "pt"})
    (tmp_path / "m.safetensors").write_bytes(data)
    hasher, plain = TensorHasher(len(data)), FileHasher()
    for i in range(0, len(data), chunk):
        hasher.update(data[i:i + chunk])
        plain.update(data[i:i + chunk])
    assert hasher.result() == seal_checkpoint(tmp_path / "m.safetensors")
    assert plain.result() == (len(data), model_module.sha256_file(tmp_path / "m.safetensors")[1])


def test_the_tensor_hasher_gives_nothing_for_bytes_that_are_not_the_file_it_was_told(tmp_path):
    data = safetensors_bytes(random_tensors(random.Random(1), 3))
    short, long, garbage = TensorHasher(len(data)), TensorHasher(len(data) - 1), TensorHasher(9)
    short.update(data[:-1])
    long.update(data)
    garbage.update(b"\xff" * 9)
    assert short.result() is None and long.result() is None and garbage.result() is None
