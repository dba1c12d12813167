"""Sizing a model from its own facts: the real embedded GGUF (KV bytes per token as llama.cpp itself
counts them, weights as its tensors' bytes), Hugging Face configs as vLLM reads them (grouped-query
and latent attention), and `lumbung size` on both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumbung.cli import main
from lumbung.errors import InvalidModelFile
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.store.gguf_info import read_gguf
from lumbung.store.sizing import config_shape, estimate, shape_of

# Llama 3.1 8B's config.json (the fields sizing reads), as published by Meta on Hugging Face.
LLAMA_3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}
# DeepSeek V3's (multi-head latent attention).
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "hidden_size": 7168,
    "num_attention_heads": 128,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "max_position_embeddings": 163840,
    "torch_dtype": "bfloat16",
}


def test_the_embedded_gguf_is_sized_as_llama_cpp_counts_it(lumbung_home: Path) -> None:
    from lumbung.engines.llamacpp.model import LlamaModel

    path = embedded_model_path(lumbung_home, GEMMA)
    shape = shape_of(path)
    llama = LlamaModel(path)
    assert shape.kv_bytes_per_token() == llama.kv_bytes_per_cell  # llama.cpp's own layer and head counts
    parsed = read_gguf(path)
    assert shape.weights_bytes == sum(t.n_bytes for t in parsed.tensors)
    assert parsed.data_offset + shape.weights_bytes <= path.stat().st_size
    e = estimate(shape, context=4096, parallel=4)
    assert e.kv_bytes == 4096 * 4 * llama.kv_bytes_per_cell
    assert e.total_bytes == shape.weights_bytes + e.kv_bytes
    assert estimate(shape, 4096, 4, "q8_0").kv_bytes < e.kv_bytes  # a quantised cache is smaller
    result = CliRunner().invoke(main, ["size", str(path), "--ctx", "8192", "--parallel", "2", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["kv_bytes"] == 8192 * 2 * llama.kv_bytes_per_cell
    assert shown["architecture"] == "gemma3" and shown["sliding_window"]
    text = CliRunner().invoke(main, ["size", str(path)]).output
    assert "KV per token" in text and "sliding-window" in text
    # By its name in the store, with the server's defaults (the trained context, 32768, x parallel 4).
    by_name = CliRunner().invoke(
        main, ["size", "gemma3:270m", "--json"], env={"LUMBUNG_HOME": str(lumbung_home)}
    )
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.output)["kv_bytes"] == 32768 * 4 * llama.kv_bytes_per_cell
    missing = CliRunner().invoke(main, ["size", "no-such-model"], env={"LUMBUNG_HOME": str(lumbung_home)})
    assert missing.exit_code == 1 and "not in the store" in missing.output


def test_a_grouped_query_config_costs_128_kib_per_token_in_bf16(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_3_8B))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 16060522496}})
    )
    shape = shape_of(tmp_path)
    assert shape.kv_bytes_per_token() == 32 * 8 * (128 + 128) * 2 == 131072
    assert shape.weights_bytes == 16060522496
    e = estimate(shape, context=8192, parallel=16)
    assert e.kv_bytes == 16 * 2**30  # 8192 x 16 tokens x 128 KiB
    assert estimate(shape, 8192, 16, "fp8").kv_bytes == 8 * 2**30
    result = CliRunner().invoke(
        main, ["size", str(tmp_path / "config.json"), "--ctx", "8192", "--parallel", "16"]
    )
    assert result.exit_code == 0, result.output
    assert "KV cache      16.00 GiB for 8192 tokens x 16 sequences" in result.output


def test_latent_attention_caches_one_compressed_vector_per_layer(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DEEPSEEK_V3))
    shape = config_shape(path)
    assert shape.kv_bytes_per_token() == 61 * (512 + 64) * 2


def test_a_config_without_the_facts_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 4096}))
    with pytest.raises(InvalidModelFile, match="num_hidden_layers"):
        shape_of(path)
    result = CliRunner().invoke(main, ["size", str(path)])
    assert result.exit_code == 1 and "num_hidden_layers" in result.output
    path.write_text("{not json")
    assert "not a readable config.json" in CliRunner().invoke(main, ["size", str(path)]).output
