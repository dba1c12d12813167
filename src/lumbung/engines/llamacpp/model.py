"""A loaded GGUF model: weights, vocabulary, tokenizer and metadata (llama.cpp's C API via ctypes).

Thread-safety: tokenization and detokenization only read the vocabulary and may run on any thread;
decoding belongs to the engine thread that owns the context (see engine.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from functools import cached_property
from pathlib import Path

import llama_cpp

from lumbung.engines.llamacpp.logs import route_llama_logs
from lumbung.errors import EngineError, ModelFileError

log = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            route_llama_logs()
            llama_cpp.llama_backend_init()
            _backend_ready = True


class LlamaModel:
    """Owns one ``llama_model*``; freed by ``close``."""

    def __init__(self, path: Path, *, vocab_only: bool = False, extra_buffers: bool = True) -> None:
        _init_backend()
        if not path.is_file():
            raise ModelFileError(f"model file not found: {path}")
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = vocab_only
        # llama.cpp's extra CPU buffer types: repacked weights for AVX2/AVX-512 kernels, and AMX
        # where the build has it (amx.py decides when that is unsafe).
        params.use_extra_bufts = extra_buffers
        ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not ptr:
            raise ModelFileError(f"llama.cpp could not load {path} (not a valid GGUF for this build?)")
        self.path = path
        self.ptr: ctypes.c_void_p | None = ptr
        self.vocab = llama_cpp.llama_model_get_vocab(ptr)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.bos: int = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self.vocab)
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(ptr)
        self.n_embd: int = llama_cpp.llama_model_n_embd(ptr)
        self.size_bytes: int = llama_cpp.llama_model_size(ptr)
        self.n_params: int = llama_cpp.llama_model_n_params(ptr)
        self._piece_cache: dict[int, bytes] = {}

    def close(self) -> None:
        if self.ptr is not None:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    @cached_property
    def metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1024)
        for i in range(llama_cpp.llama_model_meta_count(self.ptr)):
            n = llama_cpp.llama_model_meta_key_by_index(self.ptr, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = llama_cpp.llama_model_meta_val_str_by_index(self.ptr, i, buf, len(buf))
            if n >= len(buf):  # long values (chat templates) need a bigger buffer
                big = ctypes.create_string_buffer(n + 1)
                llama_cpp.llama_model_meta_val_str_by_index(self.ptr, i, big, len(big))
                out[key] = big.value.decode("utf-8", "replace")
            elif n >= 0:
                out[key] = buf.value.decode("utf-8", "replace")
        return out

    @property
    def architecture(self) -> str:
        return self.metadata.get("general.architecture", "")

    @property
    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", "replace") if raw else None

    @cached_property
    def kv_bytes_per_cell(self) -> int:
        """KV cache bytes one token costs (f16 keys and values in every layer); an estimate for
        architectures with unusual attention (MLA), exact for the usual grouped-query layers."""
        meta, arch = self.metadata, self.architecture
        n_layer = int(llama_cpp.llama_model_n_layer(self.ptr))
        n_head = max(1, int(llama_cpp.llama_model_n_head(self.ptr)))
        n_head_kv = int(llama_cpp.llama_model_n_head_kv(self.ptr)) or n_head
        k_len = int(meta.get(f"{arch}.attention.key_length", self.n_embd // n_head))
        v_len = int(meta.get(f"{arch}.attention.value_length", k_len))
        return max(1, n_layer * n_head_kv * (k_len + v_len) * 2)

    def token_text(self, token: int) -> str:
        raw = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", "replace") if raw else ""

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        arr = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            arr = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, parse_special)
            if n < 0:
                raise EngineError("tokenization failed")
        return list(arr[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token adds to the text (control tokens add none)."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        out = buf.raw[: max(n, 0)]
        self._piece_cache[token] = out
        return out

    def piece_text(self, token: int) -> str:
        """A token's text on its own (a partial UTF-8 character shows as U+FFFD)."""
        return self.piece(token).decode("utf-8", "replace")

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")
