"""`onnx`: the project's GPT exported to ONNX (opset 17), its initializers stored in the weights file.

The graph is torch's TorchScript exporter's, without constant folding, so every initializer is a
parameter under its state-dict name, as float32. The derived directory holds `model.safetensors`
(those parameters: the weights tree covers every initializer) and `model.onnx` (the graph: the
files tree), whose initializers are ONNX external data pointing at their bytes inside
model.safetensors (offset and length), so onnxruntime reads the very bytes the weights root
commits. An initializer the weights file does not hold byte for byte stays inside model.onnx,
covered by the files root.
"""

import io
import json
import warnings
from pathlib import Path

import torch

from modelreg._atomic import write_atomic
from modelreg.training.config import TrainConfig
from modelreg.training.transforms import WEIGHTS_FILE, Source, Transform, gpt_model, write_weights

OPSET = 17  # fixed: the same model gives the same graph; LayerNormalization is an op from 17
GRAPH_FILE = "model.onnx"


def apply(source: Source, params: dict, out: Path) -> None:
    from modelreg._extras import require

    require("derive", "the onnx transform")
    import onnx

    weights = write_weights(out, {k: v.to(torch.float32) for k, v in source.tensors.items()})
    model = gpt_model(source.tensors, source.config)
    idx = torch.zeros((1, source.config.block_size), dtype=torch.long)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and the tracer's shape notes
        torch.onnx.export(model, (idx,), buf, opset_version=OPSET, dynamo=False, do_constant_folding=False,
                          input_names=["idx"], output_names=["logits"],
                          dynamic_axes={"idx": {0: "B", 1: "T"}, "logits": {0: "B", 1: "T"}})
    graph = onnx.load_from_string(buf.getvalue())
    _point_into(graph, weights)
    write_atomic(out / GRAPH_FILE, graph.SerializeToString(deterministic=True))


def _point_into(graph, weights: Path) -> None:
    """Make each initializer whose bytes model.safetensors holds under its name external data there."""
    from onnx import TensorProto

    data = weights.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    for init in graph.graph.initializer:
        entry = header.get(init.name)
        if entry is None or entry["dtype"] != "F32" or init.data_type != TensorProto.FLOAT:
            continue
        start, end = (8 + n + o for o in entry["data_offsets"])
        if init.raw_data != data[start:end]:
            continue
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        for key, value in (("location", WEIGHTS_FILE), ("offset", str(start)), ("length", str(end - start))):
            init.external_data.add(key=key, value=value)


def logits(out: Path, config: TrainConfig):
    from modelreg._extras import require

    require("derive", "running an ONNX export")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / GRAPH_FILE), options, providers=["CPUExecutionProvider"])

    def run(idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"idx": idx.numpy()})[0]).float()

    return run


TRANSFORM = Transform("onnx", apply, logits, needs_gpt=True,
                      summary=f"the GPT exported to ONNX opset {OPSET}; initializers read from model.safetensors")
