"""Small GGUF files written by gguf-py (llama.cpp's own Python package), the reference writer."""

from pathlib import Path

import gguf
import numpy as np


def write_gguf(path: Path, *, tokens=("<s>", "</s>", "hello"), alignment: int | None = None,
               seed: int = 0) -> Path:
    """A GGUF file with metadata (a tokenizer's tokens, a chat template) and F32, F16, BF16-free
    plain tensors plus one Q8_0 tensor given as raw blocks."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_block_count(1)
    writer.add_context_length(16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(tokens))
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", rng.standard_normal((3, 8)).astype(np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(8).astype(np.float16))
    writer.add_tensor("blk.0.ffn_up.weight", rng.integers(0, 256, (2, 34), dtype=np.uint8),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # 2 rows of one 32-element Q8_0 block
    writer.add_tensor("output.weight", rng.integers(-9, 9, (2, 5), dtype=np.int32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
