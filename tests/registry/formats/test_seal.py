"""Sealing checkpoints and datasets: strict parsing, tamper detection, the dataset rules, OpenZeppelin interop."""

import hashlib
import json
import os
import random
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelreg.errors import CheckpointInvalid, DatasetInvalid, InputInvalid
from modelreg.formats.merkle import verify, verify_multiproof
from modelreg.formats.safetensors import DTYPE_BITS, MAX_HEADER_BYTES, read_header
from modelreg.formats.seal import TENSORS_FORMAT, FileLeaf, TensorLeaf, seal_checkpoint, seal_dataset
from tests.nodejs import node_available, run_node
from tests.registry.formats.seal_helpers import nbytes, random_tensors, safetensors_bytes


def _write(tmp_path, tensors, name="model.safetensors", **kw):
    path = tmp_path / name
    path.write_bytes(safetensors_bytes(tensors, **kw))
    return path


def _every_dtype():
    # Four elements of every dtype fill whole bytes, the sub-byte F4 and F6 included.
    return {f"t.{dtype}": (dtype, [2, 2], bytes(range(nbytes(dtype, [2, 2])))) for dtype in DTYPE_BITS}


def test_a_leaf_holds_name_dtype_shape_and_the_sha256_of_the_stored_bytes(tmp_path):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_file({"h.0.attn.weight": data}, tmp_path / "m.safetensors", metadata={"step": "3"})
    sealed = seal_checkpoint(tmp_path / "m.safetensors")
    assert sealed.format == TENSORS_FORMAT
    assert sealed.leaves == (TensorLeaf("h.0.attn.weight", "F32", (2, 3),
                                        "0x" + hashlib.sha256(data.tobytes()).hexdigest()),)


def test_every_safetensors_dtype_scalars_and_empty_tensors_seal(tmp_path):
    tensors = {**_every_dtype(), "scalar": ("F64", [], bytes(8)), "empty": ("BF16", [0, 7], b"")}
    sealed = seal_checkpoint(_write(tmp_path, tensors))
    assert [leaf.name for leaf in sealed.leaves] == sorted(tensors)
    assert sealed.leaf("scalar").shape == ()
    assert sealed.leaf("empty").sha256 == "0x" + hashlib.sha256(b"").hexdigest()


def test_the_root_does_not_depend_on_metadata_or_header_order(tmp_path):
    tensors = random_tensors(random.Random(5), 6)
    reordered = dict(reversed(list(tensors.items())))
    a = seal_checkpoint(_write(tmp_path, tensors, "a.safetensors", metadata={"x": "1"}))
    b = seal_checkpoint(_write(tmp_path, reordered, "b.safetensors"))
    assert a.root == b.root


@pytest.mark.skipif(not node_available(), reason="node and node_modules are needed")
def test_a_sealed_checkpoint_has_the_openzeppelin_root_and_proofs(tmp_path):
    tensors = {**_every_dtype(), "名前.🙂": ("F32", [], bytes(4)), "empty": ("I8", [0], b"")}
    sealed = seal_checkpoint(_write(tmp_path, tensors))
    theirs = run_node("oz_merkle.mjs", {"types": list(TensorLeaf.TYPES),
                                        "values": [leaf.values() for leaf in sealed.leaves]})
    assert sealed.root == theirs["root"]
    assert [sealed.proof(leaf.name)[1] for leaf in sealed.leaves] == theirs["proofs"]


def test_proofs_and_multiproofs_by_name_verify_offline(tmp_path):
    sealed = seal_checkpoint(_write(tmp_path, random_tensors(random.Random(6), 9)))
    for leaf in sealed.leaves:
        proven, proof = sealed.proof(leaf.name)
        assert proven == leaf and verify(sealed.root, TensorLeaf.TYPES, leaf.values(), proof)
    names = [sealed.leaves[i].name for i in (0, 4, 8)]
    leaves, proof, flags = sealed.multiproof(names)
    assert sorted(leaf.name for leaf in leaves) == sorted(names)
    assert verify_multiproof(sealed.root, TensorLeaf.TYPES, [leaf.values() for leaf in leaves], proof, flags)
    with pytest.raises(InputInvalid, match="no tensor 'missing'"):
        sealed.proof("missing")


def test_flipping_any_byte_of_tensor_data_changes_the_root_and_only_that_tensors_hash(tmp_path):
    tensors = random_tensors(random.Random(7), 5)
    raw = safetensors_bytes(tensors)
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw)
    original = seal_checkpoint(path)
    header = read_header(path)
    for t in header.tensors:
        for position in {t.begin, (t.begin + t.end) // 2, t.end - 1} if t.nbytes else ():
            tampered = bytearray(raw)
            tampered[position] ^= 0x01
            path.write_bytes(tampered)
            sealed = seal_checkpoint(path)
            assert sealed.root != original.root
            changed = [a.name for a, b in zip(original.leaves, sealed.leaves) if a != b]
            assert changed == [t.name]


@pytest.mark.parametrize("field, value", [("name", "other"), ("dtype", "I32"), ("shape", [4, 1])])
def test_a_changed_name_dtype_or_shape_in_the_header_changes_the_root(tmp_path, field, value):
    tensors = {"w": ("F32", [1, 4], bytes(16)), "b": ("F32", [4], bytes(16))}
    original = seal_checkpoint(_write(tmp_path, tensors, "a.safetensors"))
    dtype, shape, data = tensors["w"]
    changed = dict(tensors)
    del changed["w"]
    if field == "name":
        changed[value] = (dtype, shape, data)
    else:
        changed["w"] = (value, shape, data) if field == "dtype" else (dtype, value, data)
    assert seal_checkpoint(_write(tmp_path, changed, "b.safetensors")).root != original.root


def _entry(offsets, dtype="F32", shape=(2,)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("header, data, problem", [
    ({"a": _entry([0, 8]), "b": _entry([4, 12])}, bytes(12), "overlap the previous tensor"),
    ({"a": _entry([0, 8]), "b": _entry([12, 20])}, bytes(20), "4 unclaimed bytes before"),
    ({"a": _entry([4, 12])}, bytes(12), "4 unclaimed bytes before"),
    ({"a": _entry([0, 8])}, bytes(12), "4 trailing bytes after the last tensor"),
    ({"a": _entry([0, 8])}, bytes(6), r"'a': data_offsets end at 8 but the file holds only 6 data bytes"),
    ({"a": _entry([0, 8], shape=(3,))}, bytes(8), r"is 8 bytes but F32 shape \[3\] needs 12"),
    ({"a": _entry([0, 8], dtype="F31")}, bytes(8), "unknown dtype 'F31'"),
    ({"a": _entry([0, 1], dtype="F4", shape=(1,))}, bytes(1), "4 bits, not a whole number of bytes"),
    ({"a": _entry([8, 0])}, bytes(8), "end before they begin"),
    ({"a": _entry([0, -8])}, bytes(8), r"must be two integers \[begin, end\) from 0 to 2\^64 - 1"),
    ({"a": _entry([0, 8], shape=(-2,))}, bytes(8), r"must be a list of integers from 0 to 2\^64 - 1"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "exactly dtype, shape and data_offsets"),
    ({"a": _entry([0, 8]), "__metadata__": {"k": 1}}, bytes(8), "__metadata__ must map strings to strings"),
])
def test_malformed_headers_are_refused_naming_the_problem(tmp_path, header, data, problem):
    raw = json.dumps(header).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    with pytest.raises(CheckpointInvalid, match=problem):
        seal_checkpoint(path)


def test_the_error_names_the_file_and_the_tensor(tmp_path):
    path = _write(tmp_path, {"h.0.attn.weight": ("F32", [5, 6], bytes(100))})
    with pytest.raises(CheckpointInvalid, match=r"model.safetensors: tensor 'h.0.attn.weight': "
                                                r"data_offsets \[0, 100\) is 100 bytes but F32 shape \[5, 6\] needs 120"):
        seal_checkpoint(path)


@pytest.mark.parametrize("raw, problem", [
    (b"", "too short to hold the 8-byte"),
    (b"\x05\x00", "too short to hold the 8-byte"),
    (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "exceeds the 100000000-byte limit"),
    (struct.pack("<Q", 50) + b"{}", "runs past the end"),
    (struct.pack("<Q", 2) + b"[]", "does not start with"),
    (struct.pack("<Q", 4) + b'{"\xff"', "not valid UTF-8"),
    (struct.pack("<Q", 3) + b"{x}", "not valid JSON"),
])
def test_truncated_and_malformed_files_give_clear_errors(tmp_path, raw, problem):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointInvalid, match=problem):
        seal_checkpoint(path)


def test_a_name_given_twice_is_refused(tmp_path):
    raw = b'{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[],"data_offsets":[1,2]}}'
    path = tmp_path / "twice.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0")
    with pytest.raises(CheckpointInvalid, match="names 'a' twice"):
        seal_checkpoint(path)


def test_a_truncated_checkpoint_is_refused(tmp_path):
    raw = safetensors_bytes(random_tensors(random.Random(8), 4))
    path = tmp_path / "cut.safetensors"
    path.write_bytes(raw[:-3])
    with pytest.raises(CheckpointInvalid, match="truncated"):
        seal_checkpoint(path)


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointInvalid, match="nope.safetensors' does not exist"):
        seal_checkpoint(tmp_path / "nope.safetensors")


# --- datasets ------------------------------------------------------------------


def _dataset(tmp_path):
    root = tmp_path / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / ".hidden").write_text("hidden files are sealed too")
    (root / "sub" / "b.txt").write_text("beta")
    (root / "sub" / "deeper" / "données.bin").write_bytes(bytes(range(256)) * 100)
    (root / "empty").write_bytes(b"")
    return root


def test_a_directory_seals_every_file_by_relative_posix_path_sorted(tmp_path):
    root = _dataset(tmp_path)
    sealed = seal_dataset(root)
    assert [leaf.path for leaf in sealed.leaves] == [".hidden", "a.txt", "empty", "sub/b.txt",
                                                     "sub/deeper/données.bin"]
    assert sealed.leaf("sub/b.txt") == FileLeaf("sub/b.txt", 4, "0x" + hashlib.sha256(b"beta").hexdigest())
    assert seal_dataset(str(root)).root == sealed.root


def test_a_list_of_files_seals_relative_to_their_common_directory_or_the_base(tmp_path):
    root = _dataset(tmp_path)
    files = [root / "sub" / "b.txt", root / "sub" / "deeper" / "données.bin"]
    assert [leaf.path for leaf in seal_dataset(files).leaves] == ["b.txt", "deeper/données.bin"]
    assert [leaf.path for leaf in seal_dataset(files, base=root).leaves] == ["sub/b.txt",
                                                                           "sub/deeper/données.bin"]


def test_changing_one_file_changes_the_dataset_root(tmp_path):
    root = _dataset(tmp_path)
    before = seal_dataset(root).root
    (root / "sub" / "b.txt").write_text("betA")
    assert seal_dataset(root).root != before


def test_a_symlink_in_a_dataset_is_refused_not_followed(tmp_path):
    root = _dataset(tmp_path)
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", root / "sub" / "link.txt")
    with pytest.raises(DatasetInvalid, match="link.txt' is a symbolic link; links are not followed"):
        seal_dataset(root)


def test_a_symlinked_directory_in_a_dataset_is_refused(tmp_path):
    root = _dataset(tmp_path)
    os.symlink(root / "sub", root / "again")
    with pytest.raises(DatasetInvalid, match="again' is a symbolic link"):
        seal_dataset(root)


def test_listed_files_outside_the_base_or_through_links_are_refused(tmp_path):
    root = _dataset(tmp_path)
    (tmp_path / "outside.txt").write_text("x")
    with pytest.raises(DatasetInvalid, match="outside.txt' is outside the dataset base"):
        seal_dataset([root / "a.txt", root / ".." / "outside.txt"], base=root)
    os.symlink(root / "sub", tmp_path / "alias")
    with pytest.raises(DatasetInvalid, match="symbolic link"):
        seal_dataset([tmp_path / "alias" / "b.txt"], base=tmp_path)


def test_special_files_and_empty_datasets_are_refused(tmp_path):
    root = _dataset(tmp_path)
    os.mkfifo(root / "pipe")
    with pytest.raises(DatasetInvalid, match="pipe' is not a regular file"):
        seal_dataset(root)
    (tmp_path / "nothing" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetInvalid, match="holds no files"):
        seal_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetInvalid, match="does not exist or is not a directory"):
        seal_dataset(tmp_path / "missing")
