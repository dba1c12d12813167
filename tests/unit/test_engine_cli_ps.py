"""`lumbung ps` rows from GET /v1/models bodies."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from lumbung.cli import main
from lumbung.cli_ps import memory_line, rows

LOADED: dict[str, Any] = {
    "id": "gemma3:270m",
    "loaded": True,
    "memory_bytes": 600 * 2**20,
    "context_length": 8192,
    "context_length_trained": 32768,
    "kv_bytes": 512 * 2**20,
    "kv_bytes_used": 40 * 2**20,
    "active_requests": 2,
    "queued_requests": 1,
    "parallel": 4,
    "expires_at": None,
    "prefix_cache": {"entries": 3, "hits": 1, "misses": 3},
}


def test_loaded_model_row() -> None:
    assert rows([LOADED], 0, False) == [
        [
            "gemma3:270m",
            "600 MiB",
            "8,192 (trained 32,768)",
            "40 MiB of 512 MiB",
            "2/4",
            "1",
            "3 kept, 25% hits",
            "in use",
            "off",
        ]
    ]


def test_speculation_shows_its_acceptance_rate() -> None:
    spec = {"mode": "ngram", "draft_tokens": 1200, "accepted_tokens": 900, "acceptance_rate": 0.75}
    assert rows([{**LOADED, "speculative": spec}], 0, False)[0][8] == "ngram, 75% of 1,200 drafts accepted"
    fresh = {**spec, "draft_tokens": 0, "accepted_tokens": 0, "acceptance_rate": None}
    assert rows([{**LOADED, "speculative": fresh}], 0, False)[0][8] == "ngram, no drafts yet"


def test_fast_forwarded_tokens_are_shown_beside_speculation() -> None:
    assert rows([{**LOADED, "fast_forwarded_tokens": 4321}], 0, False)[0][8] == (
        "off; 4,321 forced tokens fast-forwarded"
    )
    spec = {"mode": "ngram", "draft_tokens": 10, "accepted_tokens": 5, "acceptance_rate": 0.5}
    both = {**LOADED, "speculative": spec, "fast_forwarded_tokens": 7}
    assert rows([both], 0, False)[0][8] == "ngram, 50% of 10 drafts accepted; 7 forced tokens fast-forwarded"


def test_idle_models_show_when_they_unload_and_unloaded_ones_only_with_all() -> None:
    idle = {**LOADED, "id": "b", "active_requests": 0, "queued_requests": 0, "expires_at": 1000 + 125}
    forever = {**idle, "id": "c", "expires_at": None}
    cold = {"id": "d", "loaded": False}
    table = rows([idle, forever, cold], 1000, False)
    assert [r[7] for r in table] == ["in 2m05s", "never"]
    assert rows([cold], 0, True) == [["d", "-", "-", "-", "-", "-", "-", "not loaded", "-"]]
    assert rows([{**cold, "context_length": 8192}], 0, True)[0][2] == "8,192"


def test_ps_says_when_the_server_cannot_be_reached() -> None:
    result = CliRunner().invoke(main, ["ps", "--url", "http://127.0.0.1:9"])
    assert result.exit_code != 0 and "cannot reach" in result.output
    assert "loaded local models" in CliRunner().invoke(main, ["ps", "--help"]).output


def test_a_quantized_kv_cache_says_its_type_and_what_it_saves() -> None:
    q8 = {**LOADED, "kv_bytes": 272 * 2**20, "kv_cache_type": "q8_0", "kv_bytes_f16": 512 * 2**20}
    assert rows([q8], 0, False)[0][3] == "40 MiB of 272 MiB q8_0, saves 240 MiB"
    f16 = {**LOADED, "kv_cache_type": "f16", "kv_bytes_f16": 512 * 2**20}
    assert rows([f16], 0, False)[0][3] == "40 MiB of 512 MiB"


def test_the_kv_one_sequence_takes_at_the_full_context() -> None:
    one = {**LOADED, "kv_bytes_per_sequence": 128 * 2**20}
    assert rows([one], 0, False)[0][3] == "40 MiB of 512 MiB; 128 MiB a sequence"
    q8 = {**one, "kv_bytes": 272 * 2**20, "kv_cache_type": "q8_0", "kv_bytes_f16": 512 * 2**20}
    assert rows([q8], 0, False)[0][3] == "40 MiB of 272 MiB q8_0, saves 240 MiB; 128 MiB a sequence"


def test_where_the_memory_goes() -> None:
    body = {
        "data": [
            {
                **LOADED,
                "memory_breakdown": {"weights": 253 * 2**20, "kv": 288 * 2**20, "compute": 520 * 2**20},
            },
            {
                **LOADED,
                "id": "b",
                "memory_breakdown": {"weights": 98 * 2**20, "kv": 24 * 2**20, "compute": 40 * 2**20},
            },
        ],
        "process": {"rss_bytes": 1400 * 2**20, "anon_bytes": 900 * 2**20},
    }
    assert memory_line(body) == (
        "memory: RSS 1,400 MiB (anonymous 900 MiB) = weights 351 MiB, KV 312 MiB, compute 560 MiB, the rest 177 MiB"
    )
    assert memory_line({"data": []}) is None  # an older server: no line


def test_a_sliding_window_models_checkpoints_are_a_part_and_its_window_is_within_kv() -> None:
    breakdown = {
        "weights": 235 * 2**20,
        "kv": 115 * 2**20,
        "kv_window": 67 * 2**20,  # part of kv: not counted twice
        "kv_checkpoints": 38 * 2**20,
        "compute": 100 * 2**20,
    }
    body = {
        "data": [{**LOADED, "memory_breakdown": breakdown}],
        "process": {"rss_bytes": 611 * 2**20, "anon_bytes": 339 * 2**20},
    }
    assert memory_line(body) == (
        "memory: RSS 611 MiB (anonymous 339 MiB) = weights 235 MiB, KV 115 MiB, KV checkpoints 38 MiB, "
        "compute 100 MiB, the rest 123 MiB"
    )


def test_a_draft_models_memory_is_named() -> None:
    body = {
        "data": [{**LOADED, "memory_breakdown": {"weights": 253 * 2**20, "draft_model": 120 * 2**20}}],
        "process": {"rss_bytes": 500 * 2**20},
    }
    assert memory_line(body) == "memory: RSS 500 MiB = weights 253 MiB, draft model 120 MiB, the rest 127 MiB"
