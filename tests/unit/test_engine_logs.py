"""llama.cpp's log lines reach Python's logging at their real levels (ggml's current enum)."""

from __future__ import annotations

import ctypes
import logging

import pytest

from lumbung.engines.llamacpp.logs import _on_log

NULL = ctypes.c_void_p(0)


def levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "llama.cpp"]


def test_warnings_are_warnings_and_info_is_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="llama.cpp")
    _on_log(2, b"llama_model_loader: loaded meta data\n", NULL)
    _on_log(3, b"llama_context: something odd\n", NULL)
    _on_log(4, b"llama_decode: failed\n", NULL)
    assert levels(caplog) == [
        (logging.DEBUG, "llama_model_loader: loaded meta data"),
        (logging.WARNING, "llama_context: something odd"),
        (logging.ERROR, "llama_decode: failed"),
    ]


def test_a_line_in_parts_is_one_record_at_its_first_parts_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="llama.cpp")
    _on_log(3, b"loading", NULL)
    _on_log(5, b"...", NULL)
    _on_log(5, b" done\n", NULL)
    assert levels(caplog) == [(logging.WARNING, "loading... done")]


def test_the_unified_caches_size_is_no_training_overflow(caplog: pytest.LogCaptureFixture) -> None:
    """lumbung bounds each sequence by the model's context; the pool of all of them is no overflow."""
    caplog.set_level(logging.INFO, logger="llama.cpp")
    line = b"llama_context: n_ctx_seq (28160) > n_ctx_train (8192) -- possible training context overflow\n"
    _on_log(3, line, NULL)
    assert levels(caplog) == []
