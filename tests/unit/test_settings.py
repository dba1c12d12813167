"""The one settings object: precedence, sources, and errors that name the config line."""

from __future__ import annotations

import typing
from functools import partial
from pathlib import Path

import pytest

from lumbung.config import KeyLimitsConfig
from lumbung.config_docs import render
from lumbung.errors import ConfigError
from lumbung.settings import _env_value, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_file_env_flags_in_order(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("port: 9000\nparallel: 2\nlog_level: debug\n")
    settings, sources = load_settings(
        config, {"parallel": 3}, environ={"LUMBUNG_PORT": "9100", "LUMBUNG_API_KEYS": "a, b"}
    )
    assert settings.port == 9100 and sources["port"] == "env LUMBUNG_PORT"
    assert settings.parallel == 3 and sources["parallel"] == "flag"
    assert settings.log_level == "debug" and sources["log_level"] == f"config {config}:3"
    assert settings.api_keys == ["a", "b"]
    assert sources["threads"] == "default"


def test_config_path_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("port: 9001\n")
    settings, _ = load_settings(None, environ={"LUMBUNG_CONFIG": str(config)})
    assert settings.port == 9001


def test_invalid_value_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("host: 127.0.0.1\nmodels:\n  - id: a\n    path: /x.gguf\n    parallel: lots\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config, environ={})
    assert "models.0.parallel" in str(err.value) and f"{config}:5" in str(err.value)


def test_unknown_key_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("port: 1\nprot: 2\n")
    with pytest.raises(ConfigError, match=r"'prot' \(line 2\)"):
        load_settings(config, environ={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LUMBUNG_PORT"):
        load_settings(None, environ={"LUMBUNG_PORT": "eighty"})


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(bad, environ={})
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(top, environ={})


def test_configuration_docs_are_generated_from_the_code() -> None:
    assert DOCS.read_text() == render(), "run: python -m lumbung.config_docs > docs/configuration.md"


def test_an_object_setting_is_read_as_json_from_the_environment() -> None:
    settings, _ = load_settings(None, environ={"LUMBUNG_KEY_LIMITS": '{"rpm": 60, "max_concurrent": 2}'})
    assert settings.key_limits == KeyLimitsConfig(rpm=60, max_concurrent=2)


def test_a_redis_url_that_is_not_one_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"redis_url: .*redis://HOST:PORT"):
        load_settings(None, environ={"LUMBUNG_REDIS_URL": "localhost:6379"})
    settings, _ = load_settings(None, environ={"LUMBUNG_REDIS_URL": "rediss://cache.internal:6380/2"})
    assert settings.redis_url == "rediss://cache.internal:6380/2"


def test_optional_list_setting_is_split_from_the_environment() -> None:
    settings, sources = load_settings(None, environ={"LUMBUNG_EGRESS": "ID, US"})
    assert settings.egress == ["ID", "US"] and sources["egress"] == "env LUMBUNG_EGRESS"


@pytest.mark.parametrize(
    "annotation",
    [
        list[str],
        list,
        list[str] | None,
        None | list[str],
        typing.Optional[list[str]],  # noqa: UP045 - the spelling under test
        typing.Union[int, list[str]],  # noqa: UP007 - the spelling under test
        typing.Annotated[list[str] | None, "doc"],
    ],
)
def test_every_list_shaped_annotation_is_comma_separated(annotation: object) -> None:
    assert _env_value("x", annotation, "a, b,,c ") == ["a", "b", "c"]


def test_lists_of_objects_in_a_union_are_read_as_json() -> None:
    assert _env_value("x", list[dict[str, int]] | None, '[{"a": 1}]') == [{"a": 1}]
    assert _env_value("x", str | None, "a,b") == "a,b"


def test_adapters_are_local_model_names_routes_can_target(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n"
        "  - id: base\n    path: /m.gguf\n    adapters:\n"
        "      - {name: sql, path: /sql.gguf, scale: 0.5}\n"
        "      - {name: chat, id: chat-bot, ref: 'hf:o/r:chat.gguf'}\n"
        "routes:\n  - {name: sql, tiers: [[local/base+sql], [local/chat-bot]]}\n"
    )
    settings, _ = load_settings(config, environ={})
    model = settings.models[0]
    assert [model.adapter_id(a) for a in model.adapters] == ["base+sql", "chat-bot"]
    assert model.adapters[0].scale == 0.5


@pytest.mark.parametrize(
    "adapter",
    ["{name: x}", "{name: x, path: /a.gguf, ref: 'hf:o/r'}", "{name: x, path: /a.gguf, sha256: nothex}"],
)
def test_an_adapter_needs_one_source_and_a_real_sha256(tmp_path: Path, adapter: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - id: base\n    path: /m.gguf\n    adapters:\n      - {adapter}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config, environ={})
    assert "models.0.adapters.0" in str(err.value) and f"{config}:5" in str(err.value)


def test_speculation_globally_from_the_environment_and_per_model_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  - {id: a, path: /m.gguf, speculative: {mode: off}}\n  - {id: b, path: /m.gguf}\n"
    )
    env = {"LUMBUNG_SPECULATIVE": '{"mode": "ngram", "max_draft": 4}'}
    settings, sources = load_settings(config, environ=env)
    assert settings.speculative is not None and settings.speculative.max_draft == 4
    assert sources["speculative"] == "env LUMBUNG_SPECULATIVE"
    assert settings.models[0].speculative is not None and settings.models[0].speculative.mode == "off"
    bad = tmp_path / "bad.yaml"
    bad.write_text("speculative: {mode: draft}\n")
    with pytest.raises(ConfigError, match="needs `model`"):
        load_settings(bad, environ={})


def test_deterministic_per_model_over_the_global_default_and_fast_forward_globally(tmp_path: Path) -> None:
    from lumbung.server import engine_config

    config = tmp_path / "c.yaml"
    config.write_text(
        "deterministic: true\nstructured_fast_forward: false\n"
        "models:\n  - {id: a, path: /m.gguf, deterministic: false}\n  - {id: b, path: /m.gguf}\n"
    )
    settings, _ = load_settings(config, environ={})
    a, b = (engine_config(settings, m) for m in settings.models)
    assert (a.deterministic, b.deterministic) == (False, True)
    assert engine_config(settings).deterministic is True
    assert not a.fast_forward and not b.fast_forward
    assert engine_config(load_settings(None, environ={})[0]).fast_forward is True


def test_speculative_draft_mode_per_model_finds_its_draft_model_as_served_models_are_found(
    tmp_path: Path,
) -> None:
    from lumbung.server import engine_config

    draft = tmp_path / "small.gguf"
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n"
        f"  - {{id: a, path: /m.gguf, speculative: {{mode: draft, model: {draft}, max_draft: 4}}}}\n"
        "  - {id: b, path: /m.gguf, speculative: {mode: draft, model: 'smollm2:135m'}}\n"
        "  - {id: c, path: /m.gguf, speculative: {mode: draft, model: 'nothing:here'}}\n"
    )
    settings, _ = load_settings(config, environ={"LUMBUNG_HOME": str(tmp_path / "home")})
    a, b, c = settings.models
    by_path = engine_config(settings, a).draft_model
    assert isinstance(by_path, partial) and by_path.args == (draft,)  # checked as a GGUF at load
    embedded = engine_config(settings, b).draft_model
    assert isinstance(embedded, partial) and embedded.args[1].entry.name == "smollm2:135m"
    with pytest.raises(ConfigError, match="neither a GGUF file nor a model in the store"):
        engine_config(settings, c)
    assert engine_config(settings).draft_model is None  # no speculation: no draft model


def test_speculative_draft_mode_is_refused_globally(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("speculative: {mode: draft, model: /small.gguf}\n")
    with pytest.raises(ConfigError, match="mode `draft` is set per model"):
        load_settings(config, environ={})
