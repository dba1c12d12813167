"""Gateway settings: validated at start-up, errors naming the config line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lumbung.engines.llamacpp.backend import LlamaCppBackend
from lumbung.errors import ConfigError
from lumbung.gateway.build import build_gateway
from lumbung.settings import load_settings

PROVIDERS = """\
providers:
  - name: vllm
    kind: openai
    base_url: http://10.0.0.5:8000/v1
    jurisdiction: ID
  - name: cloud
    kind: anthropic
    base_url: https://api.example.com
    jurisdiction: US
    api_key_env: CLOUD_KEY
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "lumbung.yaml"
    path.write_text(text)
    return load_settings(path, environ=env or {})[0]


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    return str(exc.value)


def test_a_valid_gateway_config_loads(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        PROVIDERS
        + """\
routes:
  - name: chat
    aliases: [gpt-4o]
    prefix_affinity: true
    tiers:
      - [vllm/qwen, {target: vllm/Qwen/Qwen2.5-7B, weight: 2}]
      - [cloud/claude-x]
      - [local/default]
""",
    )
    route = settings.routes[0]  # type: ignore[attr-defined]
    assert [[t.target for t in tier] for tier in route.tiers] == [
        ["vllm/qwen", "vllm/Qwen/Qwen2.5-7B"],
        ["cloud/claude-x"],
        ["local/default"],
    ]
    assert route.tiers[0][1].model == "Qwen/Qwen2.5-7B" and route.tiers[0][1].weight == 2


def test_unknown_provider_names_the_line(tmp_path: Path) -> None:
    msg = error(
        tmp_path, PROVIDERS + "routes:\n  - name: chat\n    tiers:\n      - [vllm/a]\n      - [nowhere/b]\n"
    )
    assert "unknown provider 'nowhere'" in msg and "lumbung.yaml:15" in msg


def test_unknown_local_model_is_refused(tmp_path: Path) -> None:
    msg = error(tmp_path, "routes:\n  - name: chat\n    tiers: [[local/nope]]\n")
    assert "no local model 'nope'" in msg


def test_egress_of_a_route_is_enforced_at_start_up(tmp_path: Path) -> None:
    text = (
        PROVIDERS
        + "routes:\n  - name: chat\n    egress: [ID]\n    tiers:\n      - [vllm/a]\n      - [cloud/b]\n"
    )
    msg = error(tmp_path, text)
    assert "egress policy" in msg and "'cloud/b'" in msg and "'US'" in msg and "lumbung.yaml:16" in msg


def test_server_wide_egress_is_enforced(tmp_path: Path) -> None:
    text = (
        PROVIDERS + "egress: [ID]\nroutes:\n  - name: chat\n    tiers: [[vllm/a, local/default], [cloud/b]]\n"
    )
    msg = error(tmp_path, text)
    assert "the server may send data only to ['ID']" in msg


def test_local_is_always_allowed(tmp_path: Path) -> None:
    load(
        tmp_path,
        PROVIDERS + "egress: [ID]\nroutes:\n  - name: chat\n    tiers: [[vllm/a], [local/default]]\n",
    )


def test_remote_provider_needs_a_jurisdiction_and_url(tmp_path: Path) -> None:
    msg = error(tmp_path, "providers:\n  - name: x\n    kind: openai\n    base_url: http://h/v1\n")
    assert "set `jurisdiction`" in msg and "lumbung.yaml:2" in msg
    msg = error(tmp_path, "providers:\n  - name: x\n    kind: openai\n    jurisdiction: ID\n")
    assert "needs `base_url`" in msg


def test_names_must_be_unique(tmp_path: Path) -> None:
    msg = error(tmp_path, "routes:\n  - name: default\n    tiers: [[local/default]]\n")
    assert "'default' is used twice" in msg
    msg = error(
        tmp_path,
        PROVIDERS + "  - name: vllm\n    kind: openai\n    base_url: http://h\n    jurisdiction: ID\n",
    )
    assert "'vllm' is used twice" in msg


def test_bad_target_shape_and_empty_tier(tmp_path: Path) -> None:
    assert "provider/model" in error(tmp_path, "routes:\n  - name: r\n    tiers: [[justamodel]]\n")
    assert "at least one target" in error(tmp_path, "routes:\n  - name: r\n    tiers: [[]]\n")


def test_missing_api_key_variable_fails_at_start_up(tmp_path: Path) -> None:
    settings = load(tmp_path, PROVIDERS + "routes:\n  - name: chat\n    tiers: [[cloud/b]]\n")
    local = LlamaCppBackend([])
    with pytest.raises(ConfigError, match="CLOUD_KEY is not set"):
        build_gateway(settings, local, environ={})  # type: ignore[arg-type]
    gateway = build_gateway(settings, local, environ={"CLOUD_KEY": "sk-test"})  # type: ignore[arg-type]
    assert [p.name for p in gateway.providers] == ["vllm", "cloud"]
    assert yaml.safe_dump(gateway.status())  # plain data, ready for JSON


def test_circuit_settings_reach_each_targets_breaker(tmp_path: Path) -> None:
    text = PROVIDERS.replace(
        "    jurisdiction: ID\n",
        "    jurisdiction: ID\n    circuit: {failures_to_open: 5, open_for: 30, probe_timeout: 2}\n",
    )
    settings = load(tmp_path, text + "routes:\n  - name: chat\n    tiers: [[vllm/a], [cloud/b]]\n")
    gateway = build_gateway(settings, LlamaCppBackend([]), environ={"CLOUD_KEY": "k"})  # type: ignore[arg-type]
    first, second = (tier[0].state.breaker.policy for tier in gateway.resolve("chat").tiers)
    assert (first.failures_to_open, first.open_for, first.probe_timeout) == (5, 30.0, 2.0)
    assert (second.failures_to_open, second.open_for) == (3, 10.0)


def test_a_local_target_may_name_a_model_by_its_alias(tmp_path: Path) -> None:
    from lumbung.server import local_specs

    settings = load(tmp_path, "routes:\n  - name: chat\n    tiers: [[local/default]]\n")
    gateway = build_gateway(settings, LlamaCppBackend(local_specs(settings)), environ={})  # type: ignore[arg-type]
    assert gateway.resolve("chat").tiers[0][0].state.model == "smollm2:135m"  # the engine knows ids only


FLEET = """\
providers:
  - name: gpu
    kind: vllm
    replicas: [http://10.0.0.5:8000/v1, http://10.0.0.6:8000/v1/]
    jurisdiction: ID
    fleet: {scrape_interval: 0.5, stale_after: 2, waiting_limit: 4, kv_limit: 0.9}
routes:
  - name: chat
    prefix_affinity: true
    affinity_load_factor: 1.5
    tiers: [[gpu/qwen], [local/default]]
"""


def test_a_vllm_provider_is_one_target_per_replica(tmp_path: Path) -> None:
    settings = load(tmp_path, FLEET)
    gateway = build_gateway(settings, LlamaCppBackend([]), environ={})  # type: ignore[arg-type]
    route = gateway.resolve("chat")
    assert [m.key for m in route.tiers[0]] == ["gpu[0]/qwen", "gpu[1]/qwen"]
    assert route.affinity_load_factor == 1.5
    replica = route.tiers[0][1].state.provider.replica
    assert replica is not None and replica.base_url == "http://10.0.0.6:8000/v1"
    assert (replica.config.waiting_limit, replica.config.kv_limit) == (4, 0.9)
    assert replica.http.prefix == ""  # /metrics and /health at the server's root, not under /v1
    assert yaml.safe_dump(gateway.status())


def test_vllm_provider_settings_are_checked(tmp_path: Path) -> None:
    base = "providers:\n  - name: gpu\n    kind: vllm\n    jurisdiction: ID\n"
    assert "needs `replicas` or `base_url`" in error(tmp_path, base)
    assert "listed twice" in error(tmp_path, base + "    replicas: [http://h:1/v1, http://h:1/v1]\n")
    assert "http://" in error(tmp_path, base + "    replicas: [h:1/v1]\n")
    msg = error(
        tmp_path, base + "    base_url: http://h/v1\n    fleet: {scrape_interval: 5, stale_after: 2}\n"
    )
    assert "stale_after" in msg
    only = "providers:\n  - name: o\n    kind: openai\n    base_url: http://h/v1\n    jurisdiction: ID\n"
    assert "only a vllm provider lists `replicas`" in error(
        tmp_path, only + "    replicas: [http://h:2/v1]\n"
    )
    assert "set `jurisdiction`" in error(
        tmp_path, "providers:\n  - name: g\n    kind: vllm\n    base_url: http://h\n"
    )


def test_launch_implies_replicas_on_local_ports_and_a_local_jurisdiction(tmp_path: Path) -> None:
    text = "providers:\n  - name: gpu\n    kind: vllm\n    launch: {model: Qwen/Qwen2.5-7B-Instruct, replicas: 2, port: 9000}\n"
    settings = load(tmp_path, text + "egress: [local]\nroutes:\n  - name: r\n    tiers: [[gpu/m]]\n")
    gateway = build_gateway(settings, LlamaCppBackend([]), environ={})  # type: ignore[arg-type]
    assert [p.base_url for p in gateway.providers] == ["http://127.0.0.1:9000/v1", "http://127.0.0.1:9001/v1"]
    assert {p.jurisdiction for p in gateway.providers} == {"local"}
    assert "only a vllm provider has `launch`" in error(
        tmp_path,
        "providers:\n  - name: o\n    kind: openai\n    base_url: http://h\n    jurisdiction: ID\n"
        "    launch: {model: m}\n",
    )
    assert "drop `replicas`" in error(tmp_path, text + "    replicas: [http://h:1/v1]\n")
