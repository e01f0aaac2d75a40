"""The `modelreg-derivation-v1` record: carried by a checkpoint manifest, and refused when a stranger bends it."""

import pytest

from modelreg.errors import ManifestInvalid
from modelreg.formats.derivation import check_derivation, derivation_record
from modelreg.formats.manifest import canonical_json, checkpoint_manifest, load_model
from modelreg.formats.seal import SealedCheckpoint, TensorLeaf

ROOT = "0x" + "ab" * 32
SOURCE = {"model_id": 1, "version": 2, "weights_root": ROOT, "tensor_count": 3, "files_root": "0x" + "00" * 32}
FIDELITY = {"probe": {"batch": 4, "tokens": 64, "seed": 1337}, "max_abs_logit_diff": 0.01,
            "perplexity": {"split": "validation", "windows": 8, "source": 12.5, "derived": 12.6}}


def _record(**overrides) -> dict:
    record = derivation_record(source=SOURCE, name="cast", params={"dtype": "bf16"}, checkable=True,
                               tools={"torch": "2.13.0"}, fidelity=FIDELITY)
    return {**record, **overrides}


def test_a_checkpoint_manifest_carries_a_derivation_and_reads_it_back():
    sealed = SealedCheckpoint.of([TensorLeaf("w", "F16", (2,), "0x" + "11" * 32)])
    manifest = checkpoint_manifest(sealed, model="m", step=None, parent={"model_id": 1, "version": 2},
                                   dataset_root=None, config={}, code_revision="r", metrics={}, environment={},
                                   artifacts={}, derivation=_record())
    read, _ = load_model(canonical_json(manifest))
    assert read["derivation"]["kind"] == "derived by cast"
    assert read["derivation"]["transform"] == {"name": "cast", "params": {"dtype": "bf16"}}


@pytest.mark.parametrize("bent, match", [
    ({"kind": "derived by onnx"}, "kind 'derived by onnx' must be 'derived by cast'"),
    ({"transform": {"name": "cast", "params": {"dtype": "bf16\x1b[2J"}}}, "printable strings"),
    ({"transform": {"name": "cast", "params": {"dtype": "[link=http://x]bf16"}}}, "printable strings"),
    ({"transform": {"name": "Cast!", "params": {}}}, "transform name 'Cast!'"),
    ({"fidelity": {**FIDELITY, "max_abs_logit_diff": "tiny"}}, "must be numbers"),
    ({"fidelity": {**FIDELITY, "perplexity": {"source": 1.0}}}, "perplexity must be null or hold"),
    ({"source": {**SOURCE, "weights_root": "0x12"}}, "weights_root '0x12'"),
    ({"checkable": "yes"}, "checkable must be true or false"),
    ({"extra": 1}, "exactly the keys"),
])
def test_a_bent_derivation_is_refused_naming_what_is_wrong(bent, match):
    with pytest.raises(ManifestInvalid, match=match):
        check_derivation(_record(**bent))
