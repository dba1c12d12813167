"""The `openai` SDK's Responses API against a real server: create, stream, store, continue, delete."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.server import ServerProcess
from tests.support.spec import validate

QUESTION = "Write a short poem about rice barns."


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_create_matches_openai_schema_and_is_stored(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="gemma3:270m",
        input=QUESTION,
        instructions="Be brief.",
        max_output_tokens=16,
        temperature=0,
        metadata={"team": "routing"},
    )
    body = json.loads(raw.text)
    validate(body, "Response")
    done = raw.parse()
    assert done.id.startswith("resp_") and done.object == "response" and done.model == "gemma3:270m"
    assert done.status == "incomplete" and done.incomplete_details
    assert done.incomplete_details.reason == "max_output_tokens"
    assert done.output_text and done.usage and done.usage.output_tokens == 16
    assert done.instructions == "Be brief." and done.metadata == {"team": "routing"}
    again = client.responses.retrieve(done.id)
    assert again.model_dump() == done.model_dump()
    items = client.responses.input_items.list(done.id)
    assert [i.type for i in items.data] == ["message"]


def test_stream_events_from_created_to_completed(client: openai.OpenAI) -> None:
    client.responses.create(
        model="gemma3:270m", input=QUESTION, max_output_tokens=8, temperature=0
    )  # warm the cache
    with client.responses.stream(
        model="gemma3:270m", input=QUESTION, max_output_tokens=8, temperature=0
    ) as stream:
        events = list(stream)
    # Cut by max_output_tokens, the stream ends with response.incomplete, as OpenAI's does (this SDK's
    # get_final_response() waits for response.completed only).
    last = events[-1]
    assert last.type == "response.incomplete"
    final = last.response
    assert final.status == "incomplete" and final.usage and final.usage.output_tokens == 8
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for e in events:
        validate(e.model_dump(exclude_unset=True), "ResponseStreamEvent")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    whole = client.responses.create(model="gemma3:270m", input=QUESTION, max_output_tokens=8, temperature=0)
    assert deltas == final.output_text == whole.output_text
    assert client.responses.retrieve(final.id).output_text == deltas  # streamed responses are stored too


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="gemma3:270m", input="My name is Sari.", max_output_tokens=8, temperature=0
    )
    second = client.responses.create(
        model="gemma3:270m",
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    alone = client.responses.create(
        model="gemma3:270m", input="What is my name?", max_output_tokens=8, temperature=0
    )
    assert second.previous_response_id == first.id
    assert first.usage and second.usage and alone.usage
    # The follow-up carries the first turn (its input and its answer) in its prompt.
    assert second.usage.input_tokens >= alone.usage.input_tokens + first.usage.input_tokens - 2
    as_items = client.responses.create(
        model="gemma3:270m",
        max_output_tokens=8,
        temperature=0,
        input=[
            {"role": "user", "content": "My name is Sari."},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]},
        ],
    )
    assert as_items.usage and as_items.usage.input_tokens == second.usage.input_tokens
    again = client.responses.create(
        model="gemma3:270m",
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    assert as_items.output_text == again.output_text  # both found the whole prompt in the prefix cache


def test_delete_and_store_false(client: openai.OpenAI, server: ServerProcess) -> None:
    done = client.responses.create(model="gemma3:270m", input="hi", max_output_tokens=2)
    deleted = client.responses.delete(done.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(done.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(done.id)
    unstored = client.responses.create(model="gemma3:270m", input="hi", max_output_tokens=2, store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gemma3:270m", input="hi", previous_response_id=unstored.id)
    assert err.value.param == "previous_response_id"
    assert (server.home / "lumbung.db").is_file()


def test_refusals_and_function_tools(client: openai.OpenAI) -> None:
    for kwargs, param in [
        ({"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "name": "apply_patch",
                        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
                    }
                ]
            },
            "tools[0].format",
        ),
        (
            {
                "tools": [
                    {
                        "type": "computer_use_preview",
                        "display_width": 1,
                        "display_height": 1,
                        "environment": "linux",
                    }
                ]
            },
            "tools[0].type",
        ),
        ({"background": True}, "background"),
        ({"truncation": "auto"}, "truncation"),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}
                ]
            },
            "input[0].content[0].type",
        ),
    ]:
        body = {"model": "gemma3:270m", "input": "hi", "max_output_tokens": 2, **kwargs}
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(**body)  # type: ignore[call-overload]
        assert err.value.param == param, err.value
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    history = [
        {"role": "user", "content": "Weather in Jakarta?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Jakarta"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "31C"},
    ]
    done = client.responses.create(
        model="gemma3:270m",
        input=history,
        tools=tools,  # type: ignore[arg-type]
        max_output_tokens=16,
    )
    assert done.status in {"completed", "incomplete"}
    for item in done.output:
        if item.type == "function_call" and done.status == "completed":
            json.loads(item.arguments)


def test_state_survives_a_restart(start_server: object) -> None:
    srv = start_server()  # type: ignore[operator]
    with openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0) as c:
        done = c.responses.create(model="gemma3:270m", input="hi", max_output_tokens=3, temperature=0)
    srv.stop()
    srv.start()
    with openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0) as c:
        assert c.responses.retrieve(done.id).output_text == done.output_text
    r = httpx.get(srv.base_url + "/v1/responses/resp_missing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_forced_function_call_whole_and_streamed(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        }
    ]
    done = client.responses.create(
        model="gemma3:270m",
        input="Weather in Jakarta?",
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
        temperature=0,
    )
    calls = [i for i in done.output if i.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    events = list(
        client.responses.create(
            model="gemma3:270m",
            input="Weather in Jakarta?",
            tools=tools,  # type: ignore[arg-type]
            tool_choice="required",
            max_output_tokens=64,
            temperature=0,
            stream=True,
        )
    )
    for e in events:
        validate(e.model_dump(exclude_unset=True), "ResponseStreamEvent")
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    finals = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert finals and finals[0].arguments == deltas and isinstance(json.loads(deltas)["city"], str)


def test_a_stored_response_belongs_to_the_key_that_made_it(start_server: object) -> None:
    # Key B could read, continue and delete key A's stored responses: they had no owner.
    srv = start_server(  # type: ignore[operator]
        env={"LUMBUNG_API_KEYS": "sk-alice,sk-bob", "LUMBUNG_ADMIN_API_KEYS": "sk-operator"}
    )

    def sdk(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=srv.base_url + "/v1", api_key=key, max_retries=0)

    with sdk("sk-alice") as alice, sdk("sk-bob") as bob, sdk("sk-operator") as operator:
        whole = alice.responses.create(model="gemma3:270m", input="hi", max_output_tokens=3, temperature=0)
        with alice.responses.stream(model="gemma3:270m", input="hi", max_output_tokens=3) as stream:
            last = list(stream)[-1]
        assert last.type == "response.incomplete"  # cut by max_output_tokens
        streamed = last.response
        for done in (whole, streamed):
            with pytest.raises(openai.NotFoundError) as err:
                bob.responses.retrieve(done.id)
            assert err.value.status_code == 404 and err.value.body["type"] == "not_found_error"  # type: ignore[index]
            with pytest.raises(openai.NotFoundError):
                bob.responses.input_items.list(done.id)
            with pytest.raises(openai.BadRequestError) as continued:
                bob.responses.create(model="gemma3:270m", input="and?", previous_response_id=done.id)
            assert continued.value.code == "previous_response_not_found"
            with pytest.raises(openai.NotFoundError):
                bob.responses.delete(done.id)
            assert alice.responses.retrieve(done.id).output_text == done.output_text  # untouched
            assert alice.responses.input_items.list(done.id).data
            assert operator.responses.retrieve(done.id).id == done.id  # operators see every key's
        follow = alice.responses.create(
            model="gemma3:270m", input="and?", previous_response_id=whole.id, max_output_tokens=2
        )
        assert follow.previous_response_id == whole.id
        mine = bob.responses.create(model="gemma3:270m", input="hi", max_output_tokens=2)
        with pytest.raises(openai.NotFoundError):
            alice.responses.retrieve(mine.id)  # and the other way round
        alice.responses.delete(whole.id)
        operator.responses.delete(streamed.id)  # an operator may delete any
        for gone in (whole, streamed):
            with pytest.raises(openai.NotFoundError):
                alice.responses.retrieve(gone.id)
    assert "sk-alice" not in srv.logs() and "sk-bob" not in srv.logs()


def test_server_log_stays_clean_after_streamed_responses(start_server: object) -> None:
    """Clients hang up as soon as they read the final event (Codex CLI does). The response was stored
    before that event went out, so a previous_response_id sent at once finds it, and no save is cut
    short: SQLAlchemy logged "Exception during reset ... CancelledError" and asyncio "Task was
    destroyed but it is pending" for aiosqlite's connection."""
    srv = start_server()  # type: ignore[operator]
    body = {"model": "gemma3:270m", "input": "hi", "max_output_tokens": 3, "stream": True}
    with httpx.Client(base_url=srv.base_url, timeout=120) as http:
        for _ in range(4):
            with http.stream("POST", "/v1/responses", json=body) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and '"response.incomplete"' in line:
                        response_id = json.loads(line[6:])["response"]["id"]
                        break
            again = {**body, "stream": False, "previous_response_id": response_id}
            assert http.post("/v1/responses", json=again).status_code == 200
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0)
    with client, client.responses.stream(model="gemma3:270m", input="hi", max_output_tokens=3) as stream:
        assert list(stream)[-1].type == "response.incomplete"
    srv.stop()
    log = srv.logs()
    for noise in ("Traceback", "Task was destroyed", "Exception during reset", "ERROR"):
        assert noise not in log, log
