"""Virtual keys through a real `lumbung serve`, with the real model and real SDK clients over HTTP: a
key made by `lumbung keys create` (a separate process on the same database) works with the openai,
anthropic and ollama SDKs; a model outside its scope is refused in each API's own format; a key
revoked over `/admin/keys` stops working on the next request, and one revoked by `lumbung keys
revoke` from another process once the server's view has refreshed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.support.server import ServerProcess

ALLOWED, OTHER = "smollm2:135m", "gemma3:270m"
OPERATOR = "sk-operator"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4}


def keys_cli(proc: ServerProcess, *args: str) -> str:
    """`lumbung keys ...` as an operator runs it, on the server's configuration (its database)."""
    assert proc.config_path is not None
    done = subprocess.run(
        [sys.executable, "-m", "lumbung", "keys", *args, "--config", str(proc.config_path)],
        env=proc.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def proc(start_server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    # A database of this test's own (the data directory, with the model, is shared by the session).
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    return start_server(config={"admin_api_keys": [OPERATOR], "database_url": url})


def test_a_created_key_works_with_every_sdk_and_its_scope_holds(proc: ServerProcess) -> None:
    secret = keys_cli(proc, "create", "--name", "sdk-app", "--models", ALLOWED)
    assert secret.startswith("lb-")

    with openai.OpenAI(base_url=proc.base_url + "/v1", api_key=secret, max_retries=0) as client:
        assert client.chat.completions.create(model=ALLOWED, **CHAT).choices
        assert [m.id for m in client.models.list().data] == [ALLOWED]
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=OTHER, **CHAT)
        assert refused.value.code == "model_not_allowed"

    with anthropic.Anthropic(base_url=proc.base_url, api_key=secret, max_retries=0) as claude:
        message = claude.messages.create(
            model=ALLOWED, max_tokens=4, messages=[{"role": "user", "content": "Say hi"}]
        )
        assert message.content
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            claude.messages.create(model=OTHER, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        assert denied.value.status_code == 403
        assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]

    with ollama.Client(host=proc.base_url, headers={"Authorization": f"Bearer {secret}"}) as local:
        assert local.chat(
            model=ALLOWED, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4}
        )
        assert {m.model for m in local.list().models} <= {ALLOWED, f"{ALLOWED}:latest", "default"}
        with pytest.raises(ollama.ResponseError) as no:
            local.generate(model=OTHER, prompt="hi", options={"num_predict": 4})
        assert no.value.status_code == 403 and "may not use model" in no.value.error

    assert secret not in proc.logs()


def test_a_key_revoked_over_the_admin_api_stops_at_once(proc: ServerProcess) -> None:
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    made = httpx.post(proc.base_url + "/admin/keys", json={"name": "short-lived"}, headers=operator)
    assert made.status_code == 201
    secret, key_id = made.json()["key"], made.json()["id"]
    with openai.OpenAI(base_url=proc.base_url + "/v1", api_key=secret, max_retries=0) as client:
        assert client.chat.completions.create(model=ALLOWED, **CHAT).choices
        assert httpx.delete(f"{proc.base_url}/admin/keys/{key_id}", headers=operator).status_code == 200
        with pytest.raises(openai.AuthenticationError) as gone:
            client.chat.completions.create(model=ALLOWED, **CHAT)
    assert gone.value.code == "api_key_revoked"
    with (
        anthropic.Anthropic(base_url=proc.base_url, api_key=secret, max_retries=0) as claude,
        pytest.raises(anthropic.AuthenticationError),
    ):
        claude.messages.create(model=ALLOWED, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    with ollama.Client(host=proc.base_url, headers={"Authorization": f"Bearer {secret}"}) as local:
        with pytest.raises(ollama.ResponseError) as refused:
            local.list()
        assert refused.value.status_code == 401


def test_a_key_revoked_by_the_cli_stops_once_the_server_looks_again(proc: ServerProcess) -> None:
    secret = keys_cli(proc, "create", "--name", "cli-app")
    with openai.OpenAI(base_url=proc.base_url + "/v1", api_key=secret, max_retries=0) as client:
        assert client.models.list().data
        keys_cli(proc, "revoke", "cli-app")
        # Another process's revoke reaches the server on its first request after its view's refresh
        # (1 s, docs/accounts.md); wait for that state, bounded, rather than for a duration.
        deadline = time.monotonic() + 30
        while True:
            try:
                client.models.list()
            except openai.AuthenticationError as exc:
                assert exc.code == "api_key_revoked"
                break
            assert time.monotonic() < deadline, "the revoke never reached the server"
            time.sleep(0.2)
