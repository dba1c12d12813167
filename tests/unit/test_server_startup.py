"""Start-up refuses configured model files that are missing or not GGUF, naming the model and the
config line (``build_app`` in process: no server, no model loaded)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lumbung.errors import ConfigError
from lumbung.server import build_app
from lumbung.settings import load_settings
from tests.support.gguf_files import write_gguf


def _missing(path: Path) -> None:
    pass


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 a zip, not a model" * 4)


def _truncated(path: Path) -> None:
    whole = write_gguf(path).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _config(tmp_path: Path, broken: Path) -> Path:
    good = write_gguf(tmp_path / "good.gguf")
    config = tmp_path / "lumbung.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "serve_default_model": False,
                "models": [{"id": "good", "path": str(good)}, {"id": "bad", "path": str(broken)}],
            },
            sort_keys=False,
        )
    )
    return config


@pytest.mark.parametrize(
    ("breaks", "why"),
    [(_missing, "cannot read"), (_bad_magic, "bad magic"), (_truncated, "truncated")],
)
def test_a_broken_configured_model_file_stops_start_up(
    tmp_path: Path, breaks: Callable[[Path], None], why: str
) -> None:
    broken = tmp_path / "broken.gguf"
    breaks(broken)
    config = _config(tmp_path, broken)
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "broken.gguf" in text)
    settings, _ = load_settings(config, environ={})
    with pytest.raises(ConfigError) as err:
        build_app(settings)
    message = str(err.value)
    assert "model 'bad'" in message and f"{config}:{line}" in message
    assert "broken.gguf" in message and why in message


def test_sound_files_start(tmp_path: Path) -> None:
    settings, _ = load_settings(_config(tmp_path, write_gguf(tmp_path / "also-good.gguf")), environ={})
    assert build_app(settings) is not None


def test_origin_names_the_line_the_variable_or_the_default(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("serve_default_model: false\nmodels:\n  - id: a\n    path: /x.gguf\n")
    settings, _ = load_settings(config, environ={"LUMBUNG_PORT": "9000"})
    assert settings.origin("models", 0, "path") == f"{config}:4"
    assert settings.origin("models", 0) == f"{config}:3"
    assert settings.origin("port") == "env LUMBUNG_PORT"
    assert settings.origin("threads") == "default"


@pytest.mark.parametrize(
    ("breaks", "why"),
    [(_missing, "cannot read"), (_bad_magic, "bad magic"), (_truncated, "truncated")],
)
def test_a_broken_draft_model_file_stops_start_up(
    tmp_path: Path, breaks: Callable[[Path], None], why: str
) -> None:
    good = write_gguf(tmp_path / "good.gguf")
    broken = tmp_path / "draft.gguf"
    breaks(broken)
    config = tmp_path / "lumbung.yaml"
    speculative = {"mode": "draft", "model": str(broken)}
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "serve_default_model": False,
                "models": [{"id": "big", "path": str(good), "speculative": speculative}],
            },
            sort_keys=False,
        )
    )
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "draft.gguf" in text)
    settings, _ = load_settings(config, environ={})
    with pytest.raises(ConfigError) as err:
        build_app(settings)
    message = str(err.value)
    assert "model 'big'" in message and "speculative draft model" in message
    assert f"{config}:{line}" in message and "draft.gguf" in message and why in message
