"""Bad input gets OpenAI's error envelope and status, never a 500, and the server keeps serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.conftest import Closing
from tests.support.server import ServerProcess
from tests.support.spec import validate

URL = "/v1/chat/completions"
OK_BODY: dict[str, Any] = {
    "model": "gemma3:270m",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 2,
}


def post_raw(server: ServerProcess, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        server.base_url + URL,
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=60,
    )


def assert_error(
    response: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    validate(body, "ErrorResponse")
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b'{"model": "gemma3:270m", "messages": [', None),
        (b"not json at all", None),
        (b'{"model": "gemma3:270m", "messages": [{"role": "user", "content": "\xff\xfe"}]}', None),
        (b"[1, 2, 3]", None),
        (b"", None),
    ],
    ids=["truncated", "garbage", "invalid-utf8", "array", "empty"],
)
def test_unparseable_bodies_are_400(server: ServerProcess, content: bytes, param: str | None) -> None:
    assert_error(post_raw(server, content), 400)


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"max_tokens": "10"}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 5}, "temperature"),
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"stream": "yes"}, "stream"),
        ({"stop": [1, 2]}, "stop"),
        ({"model": None}, "model"),
        ({"seed": 1.5}, "seed"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_wrong_types_and_values_name_the_parameter(
    server: ServerProcess, patch: dict[str, Any], param: str
) -> None:
    response = post_raw(server, json.dumps({**OK_BODY, **patch}).encode())
    assert_error(response, 400)
    assert response.json()["error"]["param"].startswith(param)


def test_missing_required_parameter(server: ServerProcess) -> None:
    response = post_raw(server, json.dumps({"model": "gemma3:270m"}).encode())
    assert_error(response, 400, code="missing_required_parameter", param="messages")


def test_deeply_nested_body_is_400(server: ServerProcess) -> None:
    deep = b'{"model": "gemma3:270m", "messages": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(post_raw(server, deep), 400)


def test_oversized_body_is_413(server: ServerProcess) -> None:
    big = json.dumps({**OK_BODY, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}).encode()
    assert_error(post_raw(server, big), 413)


def test_oversized_body_without_content_length_is_413(server: ServerProcess) -> None:
    def chunks() -> Any:
        yield b'{"model": "gemma3:270m", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    response = httpx.post(server.base_url + URL, content=chunks(), timeout=60)
    assert_error(response, 413)


def test_unknown_model_is_404(server: ServerProcess) -> None:
    with (
        openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.NotFoundError) as err,
    ):
        client.chat.completions.create(model="gpt-9000", messages=[{"role": "user", "content": "Hi"}])
    assert err.value.code == "model_not_found"
    assert err.value.body["param"] == "model"  # type: ignore[index]


def test_prompt_longer_than_context_is_400(server: ServerProcess) -> None:
    context = httpx.get(server.base_url + "/v1/models/gemma3:270m", timeout=30).json()["context_length"]
    too_long = "rice " * (context + 500)
    with (
        openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as err,
    ):
        client.chat.completions.create(model="gemma3:270m", messages=[{"role": "user", "content": too_long}])
    assert err.value.code == "context_length_exceeded"
    for stream in (True, False):
        response = httpx.post(
            server.base_url + URL,
            json={
                "model": "gemma3:270m",
                "stream": stream,
                "messages": [{"role": "user", "content": too_long}],
            },
            timeout=60,
        )
        assert_error(response, 400, code="context_length_exceeded", param="messages")


def test_stream_options_without_stream(server: ServerProcess) -> None:
    response = post_raw(server, json.dumps({**OK_BODY, "stream_options": {"include_usage": True}}).encode())
    assert_error(response, 400, param="stream_options")


def test_unknown_fields_are_accepted_and_logged_once(server: ServerProcess) -> None:
    for _ in range(3):
        response = post_raw(server, json.dumps({**OK_BODY, "x_vendor_flag": True}).encode())
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 5
    while "x_vendor_flag" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.logs().count("'x_vendor_flag'") == 1


def test_unknown_path_and_method_use_the_envelope(server: ServerProcess) -> None:
    assert_error(httpx.get(server.base_url + "/v1/nothing-here"), 404)
    response = httpx.get(server.base_url + URL)
    assert response.status_code == 405
    assert "error" in response.json()


def test_server_still_serves_after_bad_input(server: ServerProcess) -> None:
    response = post_raw(server, json.dumps(OK_BODY).encode())
    assert response.status_code == 200


@pytest.fixture
def keyed_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(env={"LUMBUNG_API_KEYS": "sk-right-key,sk-second"})


def test_api_keys(keyed_server: ServerProcess) -> None:
    base = keyed_server.base_url + "/v1"
    with (
        openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as err,
    ):
        wrong.models.list()
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert_error(httpx.post(base + "/chat/completions", json=OK_BODY), 401, code="missing_api_key")
    for key in ("sk-right-key", "sk-second"):
        with openai.OpenAI(base_url=base, api_key=key, max_retries=0) as client:
            assert client.chat.completions.create(**OK_BODY).choices
    assert httpx.get(keyed_server.base_url + "/health").status_code == 200  # probes need no key
    assert "sk-right-key" not in keyed_server.logs() and "sk-wrong" not in keyed_server.logs()


def test_operator_actions_need_an_operator_key(
    start_server: Callable[..., ServerProcess], closing: Closing
) -> None:
    proc = start_server(env={"LUMBUNG_API_KEYS": "sk-user", "LUMBUNG_ADMIN_API_KEYS": "sk-admin"})
    user = closing(ollama.Client(host=proc.base_url, headers={"Authorization": "Bearer sk-user"}))
    admin = closing(ollama.Client(host=proc.base_url, headers={"Authorization": "Bearer sk-admin"}))
    for refused in (lambda: user.delete("gemma3:270m"), lambda: user.pull("qwen2.5:0.5b-instruct")):
        with pytest.raises(ollama.ResponseError) as err:
            refused()
        assert err.value.status_code == 403 and "operator key" in err.value.error
    assert user.list().models  # everything else stays open to API keys
    with pytest.raises(ollama.ResponseError) as missing:
        admin.delete("no-such-model:1b")
    assert missing.value.status_code == 404  # allowed, and then the model is not there
    status = proc.base_url + "/admin/providers"
    assert_error(
        httpx.get(status, headers={"Authorization": "Bearer sk-user"}), 403, code="admin_key_required"
    )
    assert httpx.get(status, headers={"Authorization": "Bearer sk-admin"}).status_code == 200
    with openai.OpenAI(base_url=proc.base_url + "/v1", api_key="sk-admin", max_retries=0) as client:
        assert client.models.list().data  # an operator key is an API key too
    assert "sk-admin" not in proc.logs() and "sk-user" not in proc.logs()


def test_hashed_keys_in_config(start_server: Callable[..., ServerProcess]) -> None:
    import hashlib

    digest = hashlib.sha256(b"sk-from-config").hexdigest()
    proc = start_server(config={"api_keys": [f"sha256:{digest}"]})
    with openai.OpenAI(base_url=proc.base_url + "/v1", api_key="sk-from-config", max_retries=0) as client:
        assert client.models.list().data
    with (
        openai.OpenAI(base_url=proc.base_url + "/v1", api_key=digest, max_retries=0) as hashed,
        pytest.raises(openai.AuthenticationError),
    ):
        hashed.models.list()


def test_non_loopback_without_keys_is_refused(lumbung_home: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "lumbung", "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"LUMBUNG_HOME": str(lumbung_home), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "--allow-no-auth" in result.stderr and "0.0.0.0" in result.stderr


def test_choices_refused_midway_get_a_429_in_the_envelope_and_leave_nothing_behind(
    start_server: Callable[..., ServerProcess], closing: Closing
) -> None:
    # Two slots, no queue: with one taken, a streamed n=2 (or two prompts) has one choice admitted and
    # one refused. Closing the admitted one while it still waited for its first token was a 500.
    proc = start_server(config={"parallel": 2, "max_queue": 0, "prefix_cache_mb": 0})
    client = closing(openai.OpenAI(base_url=proc.base_url + "/v1", api_key="x", max_retries=0))
    blocker = client.chat.completions.create(
        model="gemma3:270m",
        messages=[{"role": "user", "content": "Count to a thousand."}],
        max_tokens=4000,
        stream=True,
    )
    next(iter(blocker))  # holds one slot from now on
    refused: list[httpx.Response] = []
    with httpx.Client(base_url=proc.base_url, timeout=120) as raw:
        refused.append(raw.post(URL, json={**OK_BODY, "n": 2, "stream": True}))
        body = {"model": "gemma3:270m", "prompt": ["One", "Two"], "max_tokens": 2, "stream": True}
        refused.append(raw.post("/v1/completions", json=body))
    for response in refused:
        assert_error(response, 429)
        assert response.headers.get("retry-after")
    blocker.close()
    deadline = time.monotonic() + 60  # the engine frees the hung-up stream's slot on its next step
    while httpx.get(proc.base_url + "/v1/models/default", timeout=10).json().get("active_requests"):
        assert time.monotonic() < deadline, "a slot stayed taken"
        time.sleep(0.1)
    for _ in range(2):  # both slots free again: nothing leaked
        stream = client.chat.completions.create(**OK_BODY, n=2, stream=True)
        assert {c.choices[0].index for c in stream if c.choices} == {0, 1}
    assert "already running" not in proc.logs() and "Traceback" not in proc.logs()
