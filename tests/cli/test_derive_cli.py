"""`modelreg derive`, `commit --derived-from` and the audit of derived versions, on the devnet: edges,
fidelity, re-derivation (REPRODUCED, or DIVERGED naming the tensor or file), revoked and unverified sources."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.slow


def _derive(run, *args, expect=0):
    return run("derive", "gpt-tiny:2", *args, expect=expect)


def test_a_cast_is_committed_with_its_edge_and_fidelity_and_its_replay_is_reproduced(trained, tmp_path):
    out = _derive(trained, "--transform", "cast", "--param", "dtype=bf16", "--to", "gpt-tiny-bf16").output
    assert "Derived gpt-tiny v2 derived by cast (dtype=bf16) as gpt-tiny-bf16 version 1" in out
    assert "validation perplexity" in out
    shown = trained("audit", "show", "gpt-tiny-bf16", "1", "--json").output
    d = json.loads(shown)["manifest"]["derivation"]
    assert d["kind"] == "derived by cast" and d["transform"] == {"name": "cast", "params": {"dtype": "bf16"}}
    assert d["source"]["version"] == 2 and d["checkable"] and {"modelreg", "torch", "onnx"} <= set(d["tools"])
    assert 0 < d["fidelity"]["max_abs_logit_diff"] < 0.1
    assert d["fidelity"]["perplexity"]["source"] != d["fidelity"]["perplexity"]["derived"]
    assert json.loads(shown)["parent"] == {"model_id": 1, "version": 2}
    text = trained("audit", "show", "gpt-tiny-bf16", "1").output
    assert "edge: derived by cast (dtype=bf16) from model 1 v2" in text and "fidelity: max |Δlogit|" in text

    replay = trained("audit", "replay", "gpt-tiny-bf16").output
    assert replay.startswith("REPRODUCED: gpt-tiny-bf16 v1 (re-derived): re-running cast")
    assert "replay: REPRODUCED (re-derived" in trained("audit", "show", "gpt-tiny-bf16", "1").output

    lineage = trained("audit", "lineage", "gpt-tiny-bf16", "--json").output
    assert json.loads(lineage)["derivations"]["gpt-tiny-bf16:1"]["transform"] == "cast"
    table = trained("audit", "lineage", "gpt-tiny").output
    assert "derived by cast" in table and "trained" in table
    report = tmp_path / "report.md"
    trained("audit", "report", "gpt-tiny", "-o", report)
    text = report.read_text().replace("\\", "")  # Markdown escapes
    assert "gpt-tiny v2 → gpt-tiny-bf16 v1 (derived by cast dtype=bf16; checkable by audit replay; fidelity: max" \
        in text
    assert "gpt-tiny v1 → gpt-tiny v2 (parent)" in text  # a training edge, told apart


def test_an_int8_derivation_with_one_changed_scale_is_diverged_naming_that_scale(trained, tmp_path):
    _derive(trained, "--transform", "int8-weight-only", "--to", "gpt-tiny-int8", "-o", tmp_path / "int8")
    assert trained("audit", "replay", "gpt-tiny-int8").output.startswith("REPRODUCED")
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "int8", tampered)
    tensors = load_file(tampered / "model.safetensors")
    name = sorted(k for k in tensors if k.endswith(".scale"))[0]
    tensors[name][0] *= 1.01
    save_file(tensors, tampered / "model.safetensors")
    trained("commit", tampered, "--model", "gpt-tiny-int8", "--derived-from", "gpt-tiny:2",
            "--transform", "int8-weight-only")
    result = trained("audit", "replay", "gpt-tiny-int8", "--version", "2", expect=1)
    assert result.output.startswith("DIVERGED: gpt-tiny-int8 v2 (re-derived)")
    assert f"  tensor {name}: differs" in result.output
    assert result.output.count(": differs") == 1


def test_an_onnx_export_with_one_changed_byte_is_diverged_naming_the_file(trained, tmp_path):
    out = _derive(trained, "--transform", "onnx", "--to", "gpt-tiny-onnx", "-o", tmp_path / "onnx").output
    assert "files root" in out
    assert trained("audit", "replay", "gpt-tiny-onnx").output.startswith("REPRODUCED")
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "onnx", tampered)
    data = bytearray((tampered / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (tampered / "model.onnx").write_bytes(bytes(data))
    trained("commit", tampered, "--model", "gpt-tiny-onnx", "--derived-from", "gpt-tiny:2", "--transform", "onnx")
    result = trained("audit", "replay", "gpt-tiny-onnx", "--version", "2", expect=1)
    assert "  file model.onnx: differs" in result.output
    assert "tensor " not in result.output  # the weights, and so every initializer, are the honest ones


def test_a_lora_merge_records_its_adapter_by_cid_and_is_reproduced(trained, tmp_path):
    committed = load_file(next((trained.home / "runs" / "gpt-tiny").glob("ckpt-000006.safetensors")))
    torch.manual_seed(1)
    out_f, in_f = committed["transformer.h.0.attn.c_attn.weight"].shape
    save_file({"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": torch.randn(4, in_f),
               "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": torch.randn(out_f, 4) * 0.01},
              tmp_path / "adapter.safetensors")
    cid = json.loads(trained("ipfs", "add", tmp_path / "adapter.safetensors", "--json").output)["cid"]
    _derive(trained, "--transform", "merge-lora", "--param", f"adapter={cid}", "--param", "scale=0.5",
            "--to", "gpt-tiny-lora")
    d = json.loads(trained("audit", "show", "gpt-tiny-lora", "1", "--json").output)["manifest"]["derivation"]
    assert d["transform"] == {"name": "merge-lora", "params": {"adapter": cid, "scale": "0.5"}}
    assert trained("audit", "replay", "gpt-tiny-lora").output.startswith("REPRODUCED")


def test_a_derivation_by_an_unknown_transform_is_recorded_but_not_checkable(trained, tmp_path):
    torch.manual_seed(0)
    save_file({"w": torch.randn(4, 4)}, tmp_path / "gptq.safetensors")
    out = trained("commit", tmp_path / "gptq.safetensors", "--model", "gpt-tiny-gptq", "--derived-from", "gpt-tiny:2",
                  "--transform", "gptq", "--param", "bits=4").output
    assert "'gptq' is no transform modelreg knows: the edge is recorded, not checkable" in out
    result = trained("audit", "replay", "gpt-tiny-gptq", expect=2)
    assert "is derived by gptq, a transform this modelreg does not know: the edge is recorded but not checkable" \
        in result.output
    assert "checkable: no" in trained("audit", "show", "gpt-tiny-gptq", "1").output
    lineage = json.loads(trained("audit", "lineage", "gpt-tiny-gptq", "--json").output)["derivations"]
    assert lineage["gpt-tiny-gptq:1"] == {"kind": "derived by gptq", "transform": "gptq", "params": {"bits": "4"},
                                          "checkable": False, "fidelity": None}


def test_a_local_copy_that_differs_from_the_chain_is_not_transformed(trained, tmp_path):
    committed = next((trained.home / "runs" / "gpt-tiny").glob("ckpt-000006.safetensors"))
    tensors = load_file(committed)
    tensors["transformer.wpe.weight"][0, 0] += 1
    save_file(tensors, tmp_path / "copy.safetensors")
    result = _derive(trained, "--transform", "cast", "--to", "gpt-tiny-x", "--local", tmp_path / "copy.safetensors",
                     expect=1)
    assert "nothing unverified is transformed" in result.output
    assert "Error: no model named 'gpt-tiny-x'" in trained("audit", "history", "gpt-tiny-x", expect=2).output


def test_unknown_transforms_revoked_sources_and_used_output_directories_are_refused_by_name(trained, tmp_path):
    result = _derive(trained, "--transform", "int4", "--to", "gpt-tiny-int4", expect=2)
    assert "Error: no transform named 'int4'; known: cast, int8-weight-only, merge-lora, onnx" in result.output
    (tmp_path / "notes.txt").write_text("mine")
    result = _derive(trained, "--transform", "cast", "--to", "gpt-tiny-fp16", "-o", tmp_path, expect=2)
    assert f"Error: {tmp_path} exists and is not an empty directory; name a new one" in result.output
    trained("model", "revoke", "gpt-tiny", "1", "--reason", "trained on leaked eval data")
    result = trained("derive", "gpt-tiny:1", "--transform", "cast", "--to", "gpt-tiny-fp16", expect=2)
    assert "gpt-tiny v1 was revoked by 0x" in result.output
    assert "'trained on leaked eval data'; nothing is derived from a revoked version" in result.output
