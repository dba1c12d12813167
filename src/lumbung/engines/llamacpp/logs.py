"""llama.cpp's log messages into Python's logging (logger ``llama.cpp``), at their real levels.

llama-cpp-python's own callback maps ggml's levels from an older enum (today's ggml: 1 debug, 2 info,
3 warn, 4 error, 5 continuation), so its "quiet" setting printed every warning as an error straight
to stderr. Here llama.cpp's info chatter is DEBUG, warnings WARNING, errors ERROR.

One warning is only a debug line: with a unified KV cache llama.cpp compares the whole cache, shared
by all sequences, with the trained context ("n_ctx_seq (N) > n_ctx_train (M) -- possible training
context overflow"); lumbung bounds each sequence by the model's context itself (context.py), so that
cache size is no overflow.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import llama_cpp

log = logging.getLogger("llama.cpp")

_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONTINUATION = 5
_POOL_NOT_OVERFLOW = "possible training context overflow"

_lock = threading.Lock()
_pending: list[str] = []
_pending_level = logging.DEBUG


# "llama_kv_cache:        CPU KV buffer size =    48.00 MiB" (one line per buffer and device)
_BUFFER = re.compile(r"\b(model|KV|compute|output) buffer size =\s*([0-9.]+) MiB")
# "llama_kv_cache_iswa: creating     SWA KV cache, size = 2560 cells": the KV buffer lines after it
# are the sliding-window layers' (also counted in "KV"), kept apart as "KV SWA"
_KV_CACHE = re.compile(r"creating\s+(non-SWA|SWA) KV cache, size = (\d+) cells")
_capture = threading.local()


@contextmanager
def buffer_sizes() -> Iterator[dict[str, int]]:
    """The buffers llama.cpp reports allocating on this thread inside the block, in bytes by kind
    (model, KV, compute, output; for sliding-window models also "KV SWA", the part of KV in the
    sliding-window layers, and "KV cells" / "KV SWA cells"): llama.cpp has no API for them, only
    these log lines."""
    sizes: dict[str, int] = {}
    _capture.sizes = sizes
    _capture.kv_kind = "KV"
    try:
        yield sizes
    finally:
        _capture.sizes = None


def _emit(level: int, text: str) -> None:
    sizes = getattr(_capture, "sizes", None)
    if sizes is not None and (cache := _KV_CACHE.search(text)):
        _capture.kv_kind = "KV SWA" if cache[1] == "SWA" else "KV"
        sizes[f"{_capture.kv_kind} cells"] = int(cache[2])
    if sizes is not None and (found := _BUFFER.search(text)):
        size = int(float(found[2]) * 2**20)
        sizes[found[1]] = sizes.get(found[1], 0) + size
        if found[1] == "KV" and _capture.kv_kind == "KV SWA":
            sizes["KV SWA"] = sizes.get("KV SWA", 0) + size
    if _POOL_NOT_OVERFLOW in text:
        level = logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "%s", text)


def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _pending_level
    piece = text.decode("utf-8", "replace")
    with _lock:
        if level != _CONTINUATION:
            _pending_level = _LEVELS.get(level, logging.DEBUG)
        _pending.append(piece)
        if not piece.endswith("\n"):
            return  # a line in parts (progress dots): logged when it ends
        line = "".join(_pending).rstrip()
        _pending.clear()
        chosen = _pending_level
    if line:
        _emit(chosen, line)


_callback = llama_cpp.llama_log_callback(_on_log)  # kept referenced: llama.cpp holds the pointer


def route_llama_logs() -> None:
    """Send llama.cpp's (and ggml's) log through ``_on_log``; call once, before loading models."""
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
