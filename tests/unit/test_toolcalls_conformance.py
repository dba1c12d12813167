"""docs/api-compatibility.md's tool-call matrix is what the code does today (regenerate with
``.venv/bin/python -m tests.support.conformance``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lumbung import toolcalls
from lumbung.engines.llamacpp.grammar import GrammarCompiler
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support import conformance


@pytest.fixture(scope="module")
def compiler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrammarCompiler]:
    vocab = LlamaModel(embedded_model_path(tmp_path_factory.mktemp("home"), GEMMA), vocab_only=True)
    yield GrammarCompiler(vocab, [])
    vocab.close()


def test_every_family_has_samples() -> None:
    assert sorted(conformance.SAMPLES) == sorted(toolcalls.FORMATS)


def test_matrix_in_the_docs_is_current(compiler: GrammarCompiler) -> None:
    generated = conformance.matrix(compiler)
    assert conformance.documented() == generated, (
        "docs/api-compatibility.md is stale: run `.venv/bin/python -m tests.support.conformance`"
    )
    assert "**no**" not in generated  # every family supports every feature it lists
