"""A GGUF model, as a user types the commands: a lone .gguf file or a directory holding one is sealed,
committed and verified end to end, a changed tensor is named, and a broken file is one `Error:` line."""

import json
import shutil

import pytest

from modelreg.formats import gguf
from modelreg.formats.model import seal_model
from tests.cli.conftest import _home
from tests.cli.test_errors import fails
from tests.registry.formats.gguf_helpers import write_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def modelreg(tmp_path_factory):
    yield from _home(tmp_path_factory.mktemp("gguf-home"))


@pytest.fixture
def gguf_file(tmp_path):
    return write_gguf(tmp_path / "tiny-Q8_0.gguf")


def test_seal_of_a_gguf_file_prints_the_v2_root(modelreg, gguf_file):
    output = modelreg("seal", gguf_file).output
    sealed = seal_model(gguf_file)
    assert f"root        {sealed.root}\nformat      modelreg-tensors-v2\ntensors     5" in output


def test_a_lone_gguf_file_is_committed_and_verified(modelreg, gguf_file, tmp_path):
    committed = json.loads(modelreg("commit", gguf_file, "--model", "gguf-lone", "--json").output)
    assert committed["version"] == 1 and committed["root"] == seal_model(gguf_file).root
    verified = modelreg("verify", gguf_file, "--model", "gguf-lone")
    assert verified.output.startswith("VERIFIED: the file is gguf-lone version 1 (root 0x")
    proven = modelreg("verify", gguf_file, "--model", "gguf-lone", "--tensor", "blk.0.ffn_up.weight")
    assert "tensor blk.0.ffn_up.weight: proven on-chain" in proven.output

    layout = gguf.parse(gguf_file.read_bytes(), gguf_file.stat().st_size)
    target = next(t for t in layout.tensors if t.name == "token_embd.weight")
    tampered = tmp_path / "tampered.gguf"
    data = bytearray(gguf_file.read_bytes())
    data[target.end - 1] ^= 0x01
    tampered.write_bytes(data)
    verdict = json.loads(modelreg("verify", tampered, "--model", "gguf-lone", "--version", "1", "--json",
                                  expect=1).output)
    assert verdict["status"] == "MISMATCH"
    assert verdict["differences"]["changed"] == {"token_embd.weight": ["sha256"]}


def test_a_directory_with_a_gguf_file_is_committed_and_verified(modelreg, gguf_file, tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copyfile(gguf_file, folder / "tiny-Q8_0.gguf")
    (folder / "README.md").write_text("# tiny, quantized\n")
    result = modelreg("commit", folder, "--model", "gguf-dir")
    sealed = seal_model(folder)
    assert f"weights root  {sealed.root} ({sealed.tensor_count} tensors)\n" in result.output
    assert modelreg("verify", folder, "--model", "gguf-dir").output.startswith("VERIFIED")
    (folder / "README.md").write_text("# changed\n")
    changed = modelreg("verify", folder, "--model", "gguf-dir", expect=1)
    assert "  changed file: README.md (size, sha256)\n" in changed.output


@pytest.mark.parametrize("cut, message", [
    (lambda data: data[:200], "file ends inside its header"),
    (lambda data: data[:-100], "truncated"),
    (lambda data: data[:16] + (2**62).to_bytes(8, "little") + data[24:], "over the limit"),
])
def test_a_broken_gguf_file_is_one_error_line(modelreg, gguf_file, tmp_path, cut, message):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(cut(gguf_file.read_bytes()))
    fails(modelreg, "seal", broken, match=message)
    fails(modelreg, "commit", broken, "--model", "gguf-broken", match=message)
