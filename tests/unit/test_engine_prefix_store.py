"""The prefix cache's file: entries come back for the same identity; another model or other settings
are refused and a file cut short or corrupt is ignored, each with a warning; saving is atomic."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lumbung.engines.llamacpp import prefix_store
from lumbung.engines.llamacpp.prefix_store import Entry


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 9000)
    return path


def ident(model: Path, **changes: object) -> dict[str, object]:
    base = prefix_store.identity(model, "ab" * 32, "f16", None, {"ids_per_handle": 1, "n_embd": 576})
    return {**base, **changes}


ENTRIES = [Entry([1, 2, 3, 4], b"kv-one" * 100), Entry([1, 2, 9], b"kv-two" * 50)]


def test_entries_come_back_for_the_same_identity(tmp_path: Path, model: Path) -> None:
    path = tmp_path / "cache" / "m.kv"
    prefix_store.save(path, ident(model), ENTRIES)
    assert prefix_store.load(path, ident(model)) == ENTRIES
    assert not list(path.parent.glob("*.part"))
    # a sha256 the store learnt only since: the fingerprint still matches, so the file is good
    assert prefix_store.load(path, ident(model, sha256=None)) == ENTRIES


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"kv_type": "q8_0"}, "kv_type"),
        ({"sha256": "cd" * 32}, "sha256"),
        ({"llama_cpp": "0.0.1"}, "llama_cpp"),
    ],
)
def test_a_file_from_another_model_or_settings_is_refused(
    tmp_path: Path, model: Path, change: dict[str, object], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.kv"
    prefix_store.save(path, ident(model), ENTRIES)
    with caplog.at_level(logging.WARNING):
        assert prefix_store.load(path, ident(model, **change)) == []
    assert f"refused: made for another {named}" in caplog.text


def test_another_model_file_is_refused_by_its_fingerprint(tmp_path: Path, model: Path) -> None:
    path = tmp_path / "m.kv"
    prefix_store.save(path, ident(model), ENTRIES)
    model.write_bytes(model.read_bytes()[:-1] + b"!")  # the same name, other weights
    assert prefix_store.load(path, ident(model)) == []


@pytest.mark.parametrize("damage", ["cut", "flip", "garbage", "empty"])
def test_a_damaged_file_is_ignored_with_a_warning(
    tmp_path: Path, model: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.kv"
    prefix_store.save(path, ident(model), ENTRIES)
    data = path.read_bytes()
    broken = {
        "cut": data[: len(data) - 40],
        "flip": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
        "garbage": b"\x00" * 64,
        "empty": b"",
    }[damage]
    path.write_bytes(broken)
    with caplog.at_level(logging.WARNING):
        assert prefix_store.load(path, ident(model)) == []
    assert "ignored" in caplog.text and "starting cold" in caplog.text


def test_no_file_is_no_entries_and_no_warning(
    tmp_path: Path, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert prefix_store.load(tmp_path / "none.kv", ident(model)) == []
    assert not caplog.records


def test_a_model_id_makes_a_safe_file_name(tmp_path: Path) -> None:
    assert prefix_store.file_for(tmp_path, "hf:Qwen/Qwen3:8b").name == "hf_Qwen_Qwen3_8b.kv"
