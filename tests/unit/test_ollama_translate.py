"""Ollama's API <-> core types: pure translation."""

from __future__ import annotations

import json

import pytest

from lumbung.errors import InvalidRequest
from lumbung.surfaces import ollama as oll
from lumbung.surfaces.ollama_wire import ChatIn, GenerateIn
from lumbung.types import Chunk, CompletionRequest, ModelInfo, ToolCall, Usage


def _chat(**body: object) -> tuple[object, oll.OllamaCall]:
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return oll.parse_chat(oll.parse(ChatIn, json.dumps(body).encode()))


def test_keep_alive_reads_go_durations_and_seconds() -> None:
    cases: list[tuple[object, float | None]] = [
        ("5m", 300),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("2m3.5s", 123.5),
        ("500ms", 0.5),
        ("0", 0),
        ("0s", 0),
        (300, 300),
        (2.5, 2.5),
        (0, 0),
        ("30", 30),
        (" 10s ", 10),
        (None, None),
    ]
    for value, seconds in cases:
        assert oll.keep_alive_seconds(value) == seconds, value


def test_negative_keep_alive_means_forever() -> None:
    for value in (-1, -0.5, "-1m", "-1h30m", "-5"):
        assert oll.keep_alive_seconds(value) == oll.FOREVER, value


def test_keep_alive_longer_than_any_clock_means_forever() -> None:
    # 1e30 seconds once reached /api/ps as a date past year 9999: OverflowError, a 500 for everyone.
    for value in (1e30, 10**400, -(10**400), -1e308, "99999999999999h", 2**63, oll.FOREVER_SECONDS + 1):
        assert oll.keep_alive_seconds(value) == oll.FOREVER, value
    assert oll.keep_alive_seconds(86400 * 365 * 100) == 86400 * 365 * 100  # a century is a duration


def test_bad_keep_alive_is_refused_naming_the_field() -> None:
    for value in (
        "soon",
        "5x",
        "m",
        "1h 30m",
        "",
        "--1s",
        "1e3s",
        True,
        [1],
        {"m": 5},
        float("nan"),
        float("inf"),
    ):
        with pytest.raises(InvalidRequest) as err:
            oll.keep_alive_seconds(value)
        assert err.value.param == "keep_alive" and "keep_alive" in err.value.message, value


def test_keep_alive_bool_is_refused_at_the_wire() -> None:
    with pytest.raises(InvalidRequest) as err:
        _chat(keep_alive=True)
    assert err.value.param == "keep_alive"


def test_empty_request_with_keep_alive_zero_is_an_unload() -> None:
    assert _chat(messages=[], keep_alive=0)[1].unload
    assert _chat(messages=[], keep_alive="0s")[1].unload
    assert not _chat(messages=[], keep_alive="5m")[1].unload  # a load with a new keep-alive
    assert not _chat(keep_alive=0)[1].unload  # answers, then the model unloads when idle
    _, call = oll.parse_generate(oll.parse(GenerateIn, b'{"model": "m", "keep_alive": 0}'))
    assert call.unload
    writer = oll.LineWriter("m", call, chat=False)
    assert writer.loaded("unload") | {"created_at": ""} == {
        "model": "m",
        "created_at": "",
        "response": "",
        "done": True,
        "done_reason": "unload",
    }


def test_ps_shows_memory_and_expiry_longest_first() -> None:
    def info(name: str, **details: object) -> ModelInfo:
        return ModelInfo(
            id=name,
            loaded=True,
            context_length=2048,
            details={"memory_bytes": 5 << 20, "size_bytes": 1 << 20, **details},
        )

    now = 1_000_000.0
    body = oll.ps_body(
        [
            info("idle", expires_at=now + 60, keep_alive=300),
            info("busy", expires_at=None, keep_alive=300),
            info("forever", expires_at=None, keep_alive=-1),
            ModelInfo(id="cold", loaded=False),
        ],
        now,
    )
    names = [m["name"] for m in body["models"]]
    assert names == ["forever", "busy", "idle"]
    idle = body["models"][2]
    assert idle["size"] == 5 << 20 and idle["size_vram"] == 0 and idle["context_length"] == 2048
    assert idle["expires_at"] == oll.iso(now + 60) and body["models"][1]["expires_at"] == oll.iso(now + 300)
    assert int(body["models"][0]["expires_at"][:4]) > 2200  # about 292 years on, as Ollama shows it


def test_ps_never_shows_a_date_past_forever() -> None:
    # A configured keep_alive is any float: /api/ps shows forever for it rather than failing.
    now = 1_000_000.0
    models = [
        ModelInfo(id="far", loaded=True, details={"expires_at": 1e30, "keep_alive": 1e30}),
        ModelInfo(id="busy-far", loaded=True, details={"expires_at": None, "keep_alive": 1e30}),
        ModelInfo(id="nan", loaded=True, details={"expires_at": float("nan"), "keep_alive": float("nan")}),
    ]
    body = oll.ps_body(models, now)
    assert {m["expires_at"] for m in body["models"]} == {oll.iso(now + oll.FOREVER_SECONDS)}


def test_options_map_onto_sampling_with_ollamas_defaults() -> None:
    chat, call = _chat(options={"num_predict": 7, "stop": ["x"], "seed": 3, "repeat_penalty": 1.2})
    s = chat.sampling  # type: ignore[attr-defined]
    assert (s.temperature, s.top_k, s.top_p, s.max_tokens, s.stop, s.seed, s.repeat_penalty) == (
        0.8,
        40,
        0.9,
        7,
        ["x"],
        3,
        1.2,
    )
    assert call.stream  # Ollama streams unless told not to
    chat, _ = _chat(options={"num_predict": -1})
    assert chat.sampling.max_tokens is None  # type: ignore[attr-defined]


def test_tool_history_arguments_are_objects_and_tool_messages_find_their_call() -> None:
    chat, _ = _chat(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "w", "arguments": {"c": "J"}}}],
            },
            {"role": "tool", "content": "31C", "tool_name": "w"},
        ],
        tools=[{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
    )
    call = chat.messages[1].tool_calls[0]  # type: ignore[attr-defined]
    assert json.loads(call.arguments) == {"c": "J"}
    assert chat.messages[2].tool_call_id == call.id  # type: ignore[attr-defined]
    assert chat.tools[0].name == "w"  # type: ignore[attr-defined]


def test_format_json_and_schema() -> None:
    assert _chat(format="json")[0].response_format.type == "json_object"  # type: ignore[attr-defined]
    rf = _chat(format={"type": "object"})[0].response_format  # type: ignore[attr-defined]
    assert rf.type == "json_schema" and rf.schema == {"type": "object"}


def test_generate_raw_is_a_plain_prompt() -> None:
    core, call = oll.parse_generate(oll.parse(GenerateIn, b'{"model": "m", "prompt": "abc", "raw": true}'))
    assert isinstance(core, CompletionRequest) and core.prompt == "abc" and not call.load_only
    core, call = oll.parse_generate(oll.parse(GenerateIn, b'{"model": "m", "prompt": "q", "system": "s"}'))
    assert [m.role for m in core.messages] == ["system", "user"]  # type: ignore[union-attr]
    _, call = oll.parse_generate(oll.parse(GenerateIn, b'{"model": "m"}'))
    assert call.load_only


def test_streamed_call_fragments_arrive_whole_with_the_last_line() -> None:
    writer = oll.LineWriter("m", oll.OllamaCall(), chat=True)
    assert writer.body(Chunk(tool_calls=[ToolCall("c1", "w", "")])) is None
    assert writer.body(Chunk(tool_calls=[ToolCall("", "", '{"c": "J"}')])) is None
    last = writer.body(Chunk(finish_reason="tool_calls", usage=Usage(4, 6)))
    assert last is not None and last["done"] and last["done_reason"] == "stop"
    assert last["message"]["tool_calls"][0]["function"]["arguments"] == {"c": "J"}
    assert last["prompt_eval_count"] == 4 and last["eval_count"] == 6


def test_refusals_name_the_option() -> None:
    for options, word in [
        ({"mirostat": 1}, "mirostat"),
        ({"typical_p": 0.5}, "typical_p"),
        ({"repeat_last_n": 64}, "repeat_last_n"),
    ]:
        with pytest.raises(InvalidRequest) as err:
            _chat(options=options)
        assert word in err.value.message


def test_tags_list_every_alias_as_its_own_entry_with_the_same_digest() -> None:
    info = ModelInfo(
        id="gemma3:270m", aliases=["default", "g"], details={"digest": "ab" * 32, "size_bytes": 9}
    )
    body = oll.tags_body([info, ModelInfo(id="solo")])
    assert [(m["name"], m["model"]) for m in body["models"]] == [
        ("gemma3:270m", "gemma3:270m"),
        ("default", "default"),
        ("g", "g"),
        ("solo", "solo"),
    ]
    assert {m["digest"] for m in body["models"][:3]} == {"ab" * 32}


def test_capabilities_are_named_as_ollama_names_them() -> None:
    assert oll.capabilities(ModelInfo(id="m")) == ["completion", "tools"]
    assert oll.capabilities(ModelInfo(id="m", details={"thinking": True})) == [
        "completion",
        "tools",
        "thinking",
    ]
    assert oll.capabilities(ModelInfo(id="m", details={"embedding": True})) == ["embedding"]


def test_errors_name_the_ollama_option_not_the_core_parameter() -> None:
    from lumbung.errors import InvalidRequest
    from lumbung.surfaces.ollama import error_body

    cut = InvalidRequest("max_tokens: the answer was cut; raise max_tokens.", param="max_tokens")
    assert error_body(cut) == {"error": "num_predict: the answer was cut; raise num_predict."}
    schema = InvalidRequest("Unsupported schema keyword(s) in 'response_format.json_schema.schema': not")
    assert error_body(schema)["error"] == "Unsupported schema keyword(s) in 'format': not"
