"""A sentence-transformers BERT model (safetensors weights + a WordPiece ``tokenizer.json``) written as
a GGUF that llama.cpp runs as an embedding model (architecture ``bert``, mean pooling).

Written with the ``gguf`` package's writer and its tensor-name map; the vocabulary is stored the way
llama.cpp's WordPiece tokenizer reads it: a word-initial piece carries a leading U+2581 and a
continuation piece (``##ing``) loses its ``##``; bracketed specials stay as they are. Matrices are
stored as F16 (half the size, no loss a similarity score can see); norms, biases and the rows
llama.cpp adds unconverted (token types, positions) as F32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors.numpy import load as load_safetensors

from lumbung.errors import InvalidModelFile


@dataclass(frozen=True)
class BertFiles:
    """The bytes of the model's files (read from a package's archive)."""

    config: bytes  # config.json
    weights: bytes  # model.safetensors
    tokenizer: bytes  # tokenizer.json
    pooling: bytes | None = None  # 1_Pooling/config.json


def _pooling(files: BertFiles) -> gguf.PoolingType:
    if files.pooling is None:
        return gguf.PoolingType.MEAN
    config = json.loads(files.pooling)
    if config.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if config.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    raise InvalidModelFile(f"a pooling llama.cpp does not run: {config}")


def _vocab(tokenizer: dict[str, Any]) -> tuple[list[str], list[gguf.TokenType], dict[str, int]]:
    model = tokenizer.get("model") or {}
    if model.get("type") != "WordPiece":
        raise InvalidModelFile(f"a WordPiece tokenizer is expected, not {model.get('type')!r}")
    vocab: dict[str, int] = model["vocab"]
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise InvalidModelFile("the tokenizer's vocabulary has gaps in its ids")
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for piece, _ in by_id:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(piece[2:] if piece.startswith("##") else "\u2581" + piece)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types, vocab


def write_bert_gguf(files: BertFiles, out: Path, name: str) -> None:
    config = json.loads(files.config)
    if config.get("model_type") != "bert":
        raise InvalidModelFile(f"a BERT model is expected, not {config.get('model_type')!r}")
    blocks = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(blocks)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling(files))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    tokens, types, vocab = _vocab(json.loads(files.tokenizer))
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    for piece, add in (
        ("[CLS]", writer.add_bos_token_id),
        ("[SEP]", writer.add_sep_token_id),
        # An end token, though nothing is generated: the engine's model loading reads it.
        ("[SEP]", writer.add_eos_token_id),
        ("[UNK]", writer.add_unk_token_id),
        ("[PAD]", writer.add_pad_token_id),
        ("[MASK]", writer.add_mask_token_id),
    ):
        if piece in vocab:
            add(vocab[piece])

    writer.add_add_eos_token(False)  # [SEP] closes an input once, as llama.cpp's BERT adds it

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    for hf_name, tensor in sorted(load_safetensors(files.weights).items()):
        hf_name = hf_name.removeprefix("bert.")
        if hf_name.startswith("pooler.") or hf_name.endswith("position_ids"):
            continue  # the pooler serves CLS classification, not sentence embeddings
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InvalidModelFile(f"a tensor llama.cpp's BERT has no place for: {hf_name}")
        # llama.cpp adds the type and position rows to F32 states as they are: those stay F32.
        half = tensor.ndim == 2 and gguf_name not in ("token_types.weight", "position_embd.weight")
        data = tensor.astype(np.float16 if half else np.float32)
        writer.add_tensor(gguf_name, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
