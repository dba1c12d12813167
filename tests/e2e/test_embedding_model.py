"""The embedding model replay compares answers with: all-MiniLM-L6-v2, converted from its PyPI package
into the store and served on /v1/embeddings by a live server."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np

from lumbung.store import embedded_minilm
from lumbung.store.store import ModelStore
from tests.support.server import ServerProcess


def embed(server: ServerProcess, texts: list[str]) -> np.ndarray:
    response = httpx.post(
        server.base_url + "/v1/embeddings",
        json={"model": embedded_minilm.NAME, "input": texts},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    return np.array([d["embedding"] for d in response.json()["data"]])


def test_paraphrases_are_closer_than_unrelated_sentences(server: ServerProcess) -> None:
    vectors = embed(
        server,
        [
            "The weather in Paris is sunny today.",
            "It is sunny in Paris right now.",
            "Quantum chromodynamics describes the strong nuclear force.",
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply on Monday.",
        ],
    )
    assert vectors.shape == (6, 384)
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, abs_tol=1e-3) for v in vectors)
    sim = vectors @ vectors.T
    assert sim[0, 1] > 0.7 and sim[3, 4] > 0.6  # paraphrases
    assert max(sim[0, 2], sim[3, 5], sim[1, 5]) < 0.3  # unrelated
    assert sim[0, 1] > sim[0, 2] + 0.4 and sim[3, 4] > sim[3, 5] + 0.4


def test_the_converted_model_is_in_the_store_with_its_manifest(
    server: ServerProcess, lumbung_home: Path
) -> None:
    embed(server, ["hello"])
    manifest = ModelStore(lumbung_home).find(embedded_minilm.NAME)
    assert manifest.reference == embedded_minilm.REFERENCE and manifest.license == "apache-2.0"
    assert manifest.gguf is not None and manifest.gguf.embedding
    models = httpx.get(server.base_url + "/v1/models", timeout=30).json()["data"]
    assert embedded_minilm.NAME in {m["id"] for m in models}
