"""GGUF, the second tensor source: its header read by our own parser, held to gguf-py's reader, sealed
as `modelreg-tensors-v2`; and hostile headers refused with one CheckpointInvalid each."""

import struct

import gguf as gguf_py
import pytest

from modelreg.errors import CheckpointInvalid, ManifestInvalid, ModelInvalid
from modelreg.formats import gguf
from modelreg.formats.diff import diff_tensors
from modelreg.formats.manifest import checkpoint_manifest, load_model
from modelreg.formats.model import seal_model
from modelreg.formats.seal import TENSORS_FORMAT, TENSORS_FORMAT_V2, TensorHasher, seal_checkpoint
from modelreg.formats.sources import GGUF, SAFETENSORS, source_for_file
from tests.registry.formats.gguf_helpers import write_gguf
from tests.registry.formats.seal_helpers import safetensors_bytes


def write_checkpoint(path, tensors: dict):
    path.write_bytes(safetensors_bytes(tensors))
    return path


@pytest.fixture
def gguf_file(tmp_path):
    return write_gguf(tmp_path / "model.gguf")


def test_the_ggml_type_table_is_gguf_py_s():
    ours = {name: (block, size) for name, block, size in gguf.GGML_TYPES.values()}
    theirs = {t.name: sizes for t, sizes in gguf_py.GGML_QUANT_SIZES.items()}
    assert ours == theirs
    assert {i: name for i, (name, _, _) in gguf.GGML_TYPES.items()} == {t.value: t.name for t in theirs_types()}


def theirs_types():
    return [t for t in gguf_py.GGMLQuantizationType if t in gguf_py.GGML_QUANT_SIZES]


@pytest.mark.parametrize("alignment", [None, 64, 1])
def test_tensor_infos_agree_with_gguf_py_s_reader(tmp_path, alignment):
    path = write_gguf(tmp_path / "m.gguf", alignment=alignment)
    layout = gguf.parse(path.read_bytes(), path.stat().st_size)
    reader = gguf_py.GGUFReader(path)
    ours = {t.name: (t.dtype, t.shape, t.begin, t.nbytes) for t in layout.tensors}
    theirs = {t.name: (t.tensor_type.name, tuple(int(d) for d in reversed(t.shape)), int(t.data_offset),
                       int(t.n_bytes)) for t in reader.tensors}
    assert ours == theirs
    assert layout.metadata_leaf[2] == (len(reader.fields) - 3,)  # the reader counts the 3 header fields too


def test_a_lone_gguf_file_seals_as_v2_with_its_metadata_leaf(gguf_file):
    sealed = seal_model(gguf_file)
    assert sealed.tensors.format == TENSORS_FORMAT_V2 and sealed.files is None
    leaves = {leaf.name: leaf for leaf in sealed.tensors.leaves}
    assert sorted(leaves) == ["__metadata__", "blk.0.attn_norm.weight", "blk.0.ffn_up.weight", "output.weight",
                              "token_embd.weight"]
    assert leaves["blk.0.ffn_up.weight"].dtype == "Q8_0" and leaves["blk.0.ffn_up.weight"].shape == (2, 32)
    assert leaves["token_embd.weight"].shape == (3, 8)  # outermost first, as numpy wrote it
    assert leaves["__metadata__"].dtype == "GGUF_METADATA"


def test_a_gguf_file_is_told_by_its_magic_whatever_its_name(gguf_file, tmp_path):
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(gguf_file.read_bytes())
    assert source_for_file(renamed) is GGUF and source_for_file(gguf_file) is GGUF
    assert seal_model(renamed).root == seal_model(gguf_file).root


def test_streaming_hash_equals_the_mapped_seal_for_any_chunking(gguf_file):
    data = gguf_file.read_bytes()
    expected = seal_checkpoint(gguf_file)
    for chunk in (1, 5, 64, 333, len(data)):
        for source in (GGUF, None):
            hasher = TensorHasher(len(data), source)
            for i in range(0, len(data), chunk):
                hasher.update(data[i:i + chunk])
            assert hasher.result() == expected


def test_changing_the_tokenizer_changes_only_the_metadata_leaf(tmp_path):
    a = seal_model(write_gguf(tmp_path / "a.gguf"))
    b = seal_model(write_gguf(tmp_path / "b.gguf", tokens=("<s>", "</s>", "hullo")))
    diff = diff_tensors(a, b)
    assert [c.name for c in diff.changed] == ["__metadata__"] and a.root != b.root


def test_changing_one_tensor_s_bytes_names_that_tensor(gguf_file, tmp_path):
    layout = gguf.parse(gguf_file.read_bytes(), gguf_file.stat().st_size)
    target = next(t for t in layout.tensors if t.name == "blk.0.ffn_up.weight")
    tampered = tmp_path / "tampered.gguf"
    data = bytearray(gguf_file.read_bytes())
    data[target.begin + 3] ^= 1
    tampered.write_bytes(data)
    diff = diff_tensors(gguf_file, tampered)
    assert [c.name for c in diff.changed] == ["blk.0.ffn_up.weight"]


def test_the_manifest_records_v2_and_loads_back(gguf_file):
    sealed = seal_model(gguf_file)
    manifest = checkpoint_manifest(sealed)
    assert manifest["format"] == TENSORS_FORMAT_V2
    assert load_model(manifest)[1] == sealed


def test_a_manifest_must_not_call_v1_leaves_v2_nor_v2_leaves_v1(gguf_file, tmp_path):
    manifest = checkpoint_manifest(seal_model(gguf_file))
    with pytest.raises(ManifestInvalid, match="'GGUF_METADATA' is not a safetensors dtype"):
        load_model({**manifest, "format": TENSORS_FORMAT})
    st = write_checkpoint(tmp_path / "w.safetensors", {"w": ("F32", [2], bytes(8))})
    plain = checkpoint_manifest(seal_model(st))
    assert plain["format"] == TENSORS_FORMAT
    with pytest.raises(ManifestInvalid, match="every dtype is in the v1 vocabulary"):
        load_model({**plain, "format": TENSORS_FORMAT_V2})


def test_a_directory_with_a_gguf_file_and_a_config(gguf_file, tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(gguf_file.read_bytes())
    (folder / "README.md").write_text("# a quantized model")
    sealed = seal_model(folder)
    assert sealed.tensors == seal_model(gguf_file).tensors
    assert [leaf.path for leaf in sealed.file_leaves] == ["README.md"]


def test_safetensors_and_gguf_shards_of_one_directory_seal_together_as_v2(gguf_file, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "lm").mkdir(parents=True)
    (folder / "lm" / "model.gguf").write_bytes(gguf_file.read_bytes())
    write_checkpoint(folder / "vision.safetensors", {"patch.weight": ("F32", [2], bytes(8))})
    sealed = seal_model(folder)
    assert sealed.tensors.format == TENSORS_FORMAT_V2
    assert {"lm/__metadata__", "lm/blk.0.ffn_up.weight", "patch.weight"} <= {x.name for x in sealed.tensors.leaves}


def test_two_gguf_files_in_one_folder_are_refused_naming_both(gguf_file, tmp_path):
    folder = tmp_path / "quants"
    folder.mkdir()
    write_gguf(folder / "m-Q8_0.gguf")
    write_gguf(folder / "m-F16.gguf", seed=1)
    with pytest.raises(ModelInvalid, match="m-F16.gguf and m-Q8_0.gguf are two GGUF files in one folder"):
        seal_model(folder)


def test_a_safetensors_file_keeps_its_v1_root(tmp_path):
    st = write_checkpoint(tmp_path / "w.safetensors", {"w": ("BF16", [2], bytes(4)), "b": ("U8", [3], b"abc")})
    sealed = seal_checkpoint(st)
    assert source_for_file(st) is SAFETENSORS and sealed.format == TENSORS_FORMAT
    data = st.read_bytes()
    for chunk in (1, 7, len(data)):
        for source in (SAFETENSORS, None):
            hasher = TensorHasher(len(data), source)
            for i in range(0, len(data), chunk):
                hasher.update(data[i:i + chunk])
            assert hasher.result() == sealed


# Hostile headers, built by hand: every one a single CheckpointInvalid naming the problem.

def _string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def _file(*, version=3, kvs=(), tensors=(), n_tensors=None, n_kv=None, data=b"", pad=True) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs)
    for name, dims, kind, offset in tensors:
        head += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", kind, offset)
    if pad:
        head += bytes(-len(head) % 32)
    return head + data


def _kv(key: bytes, kind: int, value: bytes) -> bytes:
    return _string(key) + struct.pack("<I", kind) + value


F32 = 0
ONE = [("a", [4], F32, 0)]
TWO = [("a", [4], F32, 0), ("b", [4], F32, 32)]


def _named(tensors):
    return [(n.encode(), d, k, o) for n, d, k, o in tensors]


def test_a_minimal_hand_built_file_is_valid(tmp_path):
    raw = _file(tensors=_named(TWO), data=bytes(16) + bytes(16) + bytes(16))
    layout = gguf.parse(raw, len(raw))
    assert [(t.name, t.begin - layout.data_start) for t in layout.tensors] == [("a", 0), ("b", 32)]


HOSTILE = {
    "absurd tensor count": (_file(n_tensors=2**63), "tensor count is 9223372036854775808, over the limit"),
    "tensor count the file cannot hold": (_file(n_tensors=50_000), "cannot hold that many"),
    "absurd key count": (_file(n_kv=2**40), "metadata key count is 1099511627776, over the limit"),
    "huge string length": (_file(kvs=[struct.pack("<Q", 2**62) + bytes(40)]), r"runs past 100000000 bytes \(the limit\)"),
    "string past the end": (_file(kvs=[struct.pack("<Q", 1000) + bytes(40)]), "file ends inside its header"),
    "array string past the end": (_file(kvs=[_kv(b"k", 9, struct.pack("<IQ", 8, 2) + _string(b"ab")
                                                   + struct.pack("<Q", 500))]), "file ends inside its header"),
    "huge array": (_file(kvs=[_kv(b"k", 9, struct.pack("<IQ", 4, 2**60))]), "cannot hold that many"),
    "deep arrays": (_file(kvs=[_kv(b"k", 9, struct.pack("<IQ", 9, 1) * 20)]), "nests arrays more than 8 deep"),
    "unknown value type": (_file(kvs=[_kv(b"k", 77, b"")]), "unknown value type 77"),
    "duplicate key": (_file(kvs=[_kv(b"k", 0, b"\1")] * 2, tensors=_named(ONE), data=bytes(16)), "appears twice"),
    "bad alignment": (_file(kvs=[_kv(b"general.alignment", 4, struct.pack("<I", 24))]), "must be a power of two"),
    "alignment of another type": (_file(kvs=[_kv(b"general.alignment", 10, struct.pack("<Q", 32))]),
                                  "must be a UINT32"),
    "bad magic": (b"GGUG" + bytes(60), "does not start with the GGUF magic"),
    "version 1": (_file(version=1), "GGUF version 1 is not one of 2, 3"),
    "big-endian": (_file(version=3 << 24), "big-endian"),
    "no tensors": (_file(), "holds no tensors"),
    "duplicate tensor": (_file(tensors=_named([("a", [4], F32, 0), ("a", [4], F32, 32)]), data=bytes(48)),
                         "'a' appears twice"),
    "too many dims": (_file(tensors=_named([("a", [1] * 5, F32, 0)]), data=bytes(32)), "5 dimensions"),
    "unknown type": (_file(tensors=_named([("a", [4], 4, 0)]), data=bytes(32)), "unknown ggml type 4"),
    "partial block": (_file(tensors=_named([("a", [33], 8, 0)]), data=bytes(64)), "not whole Q8_0 blocks"),
    "misaligned offset": (_file(tensors=_named([("a", [4], F32, 0), ("b", [4], F32, 20)]), data=bytes(64)),
                          "not a multiple of the alignment"),
    "overlapping tensors": (_file(tensors=_named([("a", [16], F32, 0), ("b", [4], F32, 32)]), data=bytes(64)),
                            "overlaps the previous tensor"),
    "gap between tensors": (_file(tensors=_named([("a", [4], F32, 0), ("b", [4], F32, 64)]), data=bytes(96)),
                            "unclaimed bytes"),
    "offset past the end": (_file(tensors=_named([("a", [4], F32, 2**20)]), data=bytes(32)),
                            "unclaimed bytes"),
    "data past the end": (_file(tensors=_named([("a", [64], F32, 0)]), data=bytes(32)), "truncated"),
    "trailing bytes": (_file(tensors=_named(ONE), data=bytes(16) + bytes(64)), "trailing bytes"),
    "metadata leaf name": (_file(tensors=_named([("__metadata__", [4], F32, 0)]), data=bytes(32)),
                           "the leaf of the metadata"),
    "name not UTF-8": (_file(tensors=[(b"\xff", [4], F32, 0)], data=bytes(32)), "not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_header_is_refused(case, tmp_path):
    raw, message = HOSTILE[case]
    with pytest.raises(CheckpointInvalid, match=message):
        gguf.parse(raw, len(raw))
    path = tmp_path / "hostile.gguf"
    path.write_bytes(raw)
    with pytest.raises(CheckpointInvalid, match=message):
        seal_model(path)
    hasher = TensorHasher(len(raw), GGUF)
    hasher.update(raw)
    assert hasher.result() is None


def test_every_truncation_of_a_real_file_is_refused_and_every_prefix_asks_for_more(gguf_file):
    data = gguf_file.read_bytes()
    layout = gguf.parse(data, len(data))
    for n in [*range(0, layout.header_end, 5), layout.header_end, layout.header_end + 1, len(data) - 41]:
        with pytest.raises(CheckpointInvalid):
            gguf.parse(data[:n], n)
    for n in range(4, layout.header_end, 5):
        with pytest.raises(gguf.NeedMore) as more:
            gguf.parse(data[:n], len(data))
        assert n < more.value.need <= layout.header_end


def test_nonzero_padding_is_refused_by_both_hashers(gguf_file, tmp_path):
    data = bytearray(gguf_file.read_bytes())
    layout = gguf.parse(bytes(data), len(data))
    first, second = layout.tensors[1], layout.tensors[2]
    assert second.begin > first.end  # there is padding between them
    data[first.end] = 7
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data)
    with pytest.raises(CheckpointInvalid, match="padding bytes .* are not all zero"):
        seal_model(bad)
    hasher = TensorHasher(len(data), GGUF)
    hasher.update(bytes(data))
    assert hasher.result() is None
