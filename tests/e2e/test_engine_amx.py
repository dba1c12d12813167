"""llama.cpp's AMX kernels are tried in a child process before a model is loaded with them: a child
that crashes, hangs or fails means the model loads without them, and the server lives on."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from lumbung.engines.llamacpp import amx
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.errors import ConfigError, EngineError
from lumbung.settings import load_settings
from lumbung.store.embedded import GEMMA, embedded_model_path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(embedded_model_path(tmp_path_factory.mktemp("amx-home"), GEMMA))


@pytest.fixture
def fresh_verdicts() -> Iterator[None]:
    amx._verdicts.clear()
    yield
    amx._verdicts.clear()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_trial_loads_and_decodes_the_real_model(model_path: Path) -> None:
    if amx.build_has_amx():
        pytest.skip("with AMX in the build the verdict depends on the machine")
    assert amx.probe(model_path) is None  # the child really loaded the model and decoded


def test_the_trial_reports_a_model_it_cannot_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    failure = amx.probe(broken)
    assert failure is not None and "status" in failure


def test_a_crash_a_hang_or_a_failure_is_a_no() -> None:
    assert amx.probe(Path("x.gguf"), python("pass")) is None
    crashed = amx.probe(Path("x.gguf"), python("import faulthandler; faulthandler._sigsegv()"))
    assert crashed == "it was killed by SIGSEGV"
    assert amx.probe(Path("x.gguf"), python("import os; os.abort()")) == "it was killed by SIGABRT"
    failed = amx.probe(Path("x.gguf"), python("raise SystemExit('no tiles')"))
    assert failed == "it exited with status 1 (no tiles)"
    start = time.monotonic()
    assert amx.probe(Path("x.gguf"), python("import time; time.sleep(60)"), timeout=1) == (
        "it did not finish in 1 s"
    )
    assert time.monotonic() - start < 10


def test_builds_without_amx_keep_their_weight_repacking(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_verdicts: None
) -> None:
    monkeypatch.setattr(amx, "build_has_amx", lambda: False)
    monkeypatch.setattr(amx, "probe", lambda *a, **k: pytest.fail("no trial without AMX"))
    assert all(amx.use_extra_buffers(model_path, mode) for mode in ("auto", "on", "off"))


def test_auto_tries_each_file_once_and_follows_the_verdict(
    model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fresh_verdicts: None,
) -> None:
    """Stands in only for an AMX build (none can exist where the suite runs); the decisions are real."""
    other = tmp_path / "other.gguf"
    other.write_bytes(b"x")
    tried: list[Path] = []

    def crashing_trial(path: Path) -> str | None:
        tried.append(path)
        time.sleep(0.2)  # concurrent loads of the same file wait for this one verdict
        return "it was killed by SIGSEGV" if path == model_path else None

    monkeypatch.setattr(amx, "build_has_amx", lambda: True)
    monkeypatch.setattr(amx, "probe", crashing_trial)
    verdicts: list[bool] = []
    loads = [threading.Thread(target=lambda: verdicts.append(amx.use_extra_buffers(model_path, "auto")))]
    loads.append(threading.Thread(target=lambda: verdicts.append(amx.use_extra_buffers(model_path, "auto"))))
    with caplog.at_level(logging.WARNING, logger=amx.__name__):
        for t in loads:
            t.start()
        for t in loads:
            t.join()
    assert verdicts == [False, False] and tried == [model_path]
    assert "killed by SIGSEGV" in caplog.text and model_path.name in caplog.text
    assert amx.use_extra_buffers(other, "auto") is True
    assert amx.use_extra_buffers(model_path, "on") is True  # forced: no trial consulted
    assert amx.use_extra_buffers(other, "off") is False
    assert tried == [model_path, other]


def test_a_missing_file_gets_the_loaders_error_not_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_verdicts: None
) -> None:
    monkeypatch.setattr(amx, "build_has_amx", lambda: True)
    monkeypatch.setattr(amx, "probe", lambda *a, **k: pytest.fail("nothing to try"))
    missing = tmp_path / "gone.gguf"
    assert amx.use_extra_buffers(missing, "auto") is True
    with pytest.raises(EngineError, match="model file not found"):
        LlamaModel(missing, extra_buffers=amx.use_extra_buffers(missing, "auto"))


def _top5(model: LlamaModel, prompt: str) -> list[int]:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = 256, 256, 2, 2
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    try:
        tokens = model.tokenize(prompt, add_special=True)
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, i == len(tokens) - 1
        assert llama_cpp.llama_decode(ctx, batch) == 0
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(model.n_vocab,))
        assert np.isfinite(row).all()
        return [int(t) for t in np.argsort(row)[::-1][:5]]
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


def test_a_model_loaded_without_extra_buffers_predicts_alike(model_path: Path) -> None:
    plain = LlamaModel(model_path, extra_buffers=False)
    extra = LlamaModel(model_path)
    try:
        for prompt in ("The rice barn of the village", "def fibonacci(n):"):
            a, b = _top5(plain, prompt), _top5(extra, prompt)
            assert a[0] in b and b[0] in a, (prompt, a, b)
    finally:
        plain.close()
        extra.close()


def test_the_setting(tmp_path: Path) -> None:
    settings, sources = load_settings(None, environ={"LUMBUNG_AMX": "off"})
    assert settings.amx == "off" and sources["amx"] == "env LUMBUNG_AMX"
    assert load_settings(None, environ={})[0].amx == "auto"
    with pytest.raises(ConfigError, match="amx"):
        load_settings(None, environ={"LUMBUNG_AMX": "maybe"})
