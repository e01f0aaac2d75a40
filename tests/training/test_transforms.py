"""Derivation transforms on the CPU: deterministic bytes (here and in another process), int8 scales beside
the weights, and an ONNX export that onnxruntime runs with the logits torch gives."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modelreg.errors import DerivationUnavailable, TransformParamsInvalid, TransformUnknown
from modelreg.formats.model import seal_model
from modelreg.service.derive import DeriveJob
from modelreg.training import transforms
from modelreg.training.config import TrainConfig
from modelreg.training.model import GPT

CONFIG = TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=300)
CASES = [("cast", {"dtype": "fp16"}), ("cast", {"dtype": "bf16"}), ("int8-weight-only", {}), ("onnx", {}),
         ("merge-lora", {"adapter": "bafy-the-adapter-cid", "scale": "0.5"})]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("source") / "ckpt.safetensors"
    save_file({k: v.contiguous() for k, v in GPT(CONFIG).state_tensors().items()}, path)
    module = "base_model.model.transformer.h.0.attn.c_attn"
    save_file({f"{module}.lora_A.weight": torch.randn(2, CONFIG.n_embd),
               f"{module}.lora_B.weight": torch.randn(3 * CONFIG.n_embd, 2) * 0.01}, path.parent / "adapter.safetensors")
    return path


def _derive(source: Path, out: Path, name: str, params: dict, measure: bool = False):
    inputs = {"adapter": str(source.parent / "adapter.safetensors")} if name == "merge-lora" else {}
    return transforms.run(DeriveJob(name, params, str(source), CONFIG.to_dict(), str(out), measure=measure,
                                    inputs=inputs))


def _roots(path: str) -> list[str]:
    sealed = seal_model(path)
    return [sealed.root, sealed.files_root]


@pytest.mark.slow  # a second Python imports torch and exports the GPT again
def test_every_transform_gives_the_same_roots_twice_and_in_another_process(source, tmp_path):
    here = {}
    for i, (name, params) in enumerate(CASES):
        first = _roots(_derive(source, tmp_path / f"a{i}", name, params).path)
        assert _roots(_derive(source, tmp_path / f"b{i}", name, params).path) == first
        here[i] = first
    script = (
        "import json, sys\n"
        "from tests.training.test_transforms import CASES, _derive, _roots\n"
        "from pathlib import Path\n"
        "src, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "print(json.dumps({i: _roots(_derive(src, out / str(i), n, p).path) for i, (n, p) in enumerate(CASES)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "child")], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert {int(k): v for k, v in json.loads(done.stdout).items()} == here
    assert len({tuple(r) for r in here.values()}) == len(CASES)  # each transform gives its own content


def test_int8_stores_one_scale_per_output_channel_beside_each_weight(source, tmp_path):
    out = Path(_derive(source, tmp_path, "int8-weight-only", {}).path)
    original, derived = load_file(source), load_file(out / "model.safetensors")
    w = original["transformer.h.0.attn.c_attn.weight"]  # (3 * n_embd, n_embd)
    q, scale = derived["transformer.h.0.attn.c_attn.weight"], derived["transformer.h.0.attn.c_attn.weight.scale"]
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (w.shape[0],)
    assert int(q.abs().max()) == 127
    assert torch.all((q.float() * scale[:, None] - w).abs() <= scale[:, None] / 2 + 1e-7)
    assert derived["transformer.h.0.ln_1.weight"].dtype == torch.float32  # gains are not quantized


def test_cast_changes_only_the_dtype_of_float_tensors(source, tmp_path):
    out = Path(_derive(source, tmp_path, "cast", {"dtype": "bf16"}).path)
    derived, original = load_file(out / "model.safetensors"), load_file(source)
    assert set(derived) == set(original)
    assert all(t.dtype == torch.bfloat16 for t in derived.values())
    assert torch.equal(derived["transformer.wte.weight"], original["transformer.wte.weight"].to(torch.bfloat16))


def test_the_onnx_export_runs_in_onnxruntime_with_torchs_logits_within_the_recorded_fidelity(source, tmp_path):
    import onnx
    import onnxruntime as ort

    outcome = _derive(source, tmp_path, "onnx", {}, measure=True)
    recorded = outcome.fidelity["max_abs_logit_diff"]
    assert outcome.fidelity["probe"] == {"batch": 4, "tokens": CONFIG.block_size, "seed": CONFIG.seed}
    # Every initializer is read from model.safetensors: the weights tree covers them all.
    graph = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    assert graph.graph.initializer
    assert all(i.data_location == onnx.TensorProto.EXTERNAL for i in graph.graph.initializer)
    assert {e.value for i in graph.graph.initializer for e in i.external_data if e.key == "location"} == {
        "model.safetensors"}
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(CONFIG.seed)
    probe = torch.randint(0, CONFIG.vocab_size, (4, CONFIG.block_size), generator=g)
    model = GPT(CONFIG)
    model.load_state_tensors(load_file(source))
    with torch.no_grad():
        expected = model.eval()(probe)[0].numpy()
    got = session.run(["logits"], {"idx": probe.numpy()})[0]
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= recorded + 1e-6 < 1e-3
    shorter = session.run(["logits"], {"idx": probe[:1, :5].numpy()})[0]  # batch and length are dynamic
    assert np.allclose(shorter, expected[:1, :5], atol=1e-4)


def test_an_onnx_export_of_something_that_is_no_gpt_is_refused(source, tmp_path):
    job = DeriveJob("onnx", {}, str(source), None, str(tmp_path / "out"))
    with pytest.raises(DerivationUnavailable, match="needs the project's GPT"):
        transforms.run(job)


def test_unknown_transforms_and_parameters_are_named():
    with pytest.raises(TransformUnknown, match="no transform named 'int4'; known: cast, int8-weight-only, merge-lora, onnx"):
        transforms.normalize("int4", {})
    with pytest.raises(TransformParamsInvalid, match="needs --param dtype=VALUE with VALUE one of fp16, bf16"):
        transforms.normalize("cast", {"dtype": "fp8"})
    with pytest.raises(TransformParamsInvalid, match="has no parameter 'opset'"):
        transforms.normalize("onnx", {"opset": "18"})
    assert transforms.normalize("cast", {}) == {"dtype": "fp16"}


def test_merge_lora_adds_scale_times_b_a_to_each_adapted_weight_and_nothing_else(source, tmp_path):
    torch.manual_seed(3)
    adapted = ["transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_fc"]
    base = load_file(source)
    adapter = {}
    for module in adapted:
        out_f, in_f = base[module + ".weight"].shape
        adapter[f"base_model.model.{module}.lora_A.weight"] = torch.randn(2, in_f)
        adapter[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out_f, 2) * 0.01
    save_file(adapter, tmp_path / "adapter.safetensors")
    job = DeriveJob("merge-lora", {"adapter": "bafy-the-cid", "scale": "2"}, str(source), CONFIG.to_dict(),
                    str(tmp_path / "a"), inputs={"adapter": str(tmp_path / "adapter.safetensors")})
    merged = load_file(Path(transforms.run(job).path) / "model.safetensors")
    for module in adapted:
        a, b = adapter[f"base_model.model.{module}.lora_A.weight"], adapter[f"base_model.model.{module}.lora_B.weight"]
        expected = (base[module + ".weight"].double() + 2 * (b.double() @ a.double())).float()
        assert torch.equal(merged[module + ".weight"], expected)
    assert all(torch.equal(merged[k], v) for k, v in base.items() if k.rsplit(".", 1)[0] not in adapted)
    again = transforms.run(DeriveJob(**{**job.__dict__, "out_dir": str(tmp_path / "b")}))
    assert _roots(again.path) == _roots(str(tmp_path / "a"))
    with pytest.raises(TransformParamsInvalid, match="needs --param adapter=VALUE"):
        transforms.normalize("merge-lora", {"scale": "1"})
