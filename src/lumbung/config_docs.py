"""Renders docs/configuration.md from the Settings model, so the docs cannot drift from the code."""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from lumbung.settings import ENV_PREFIX, Settings

HEADER = """# Configuration

Generated from `src/lumbung/settings.py` by `python -m lumbung.config_docs > docs/configuration.md`;
a test fails when this file is out of date.

Values come from, lowest to highest: defaults, the YAML config file (`--config FILE` or
`$LUMBUNG_CONFIG`), `LUMBUNG_<NAME>` environment variables (lists comma-separated, objects as
JSON/YAML), command-line flags. `lumbung config` prints every value and where it came from.
Unknown keys in the config file are errors, reported with their line.
"""


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.default_factory is not None:
        if name in {"home", "threads", "memory_budget_mb"}:
            return "(computed)"
        made = field.default_factory()  # type: ignore[call-arg]
        return json.dumps(made.model_dump() if isinstance(made, BaseModel) else made)
    if field.default is PydanticUndefined:
        return "(required)"
    value: Any = field.default
    return json.dumps(value if not hasattr(value, "value") else value.value)


def _table(model: type[BaseModel], env: bool) -> list[str]:
    cols = "| setting | default | environment | description |" if env else "| key | default | description |"
    rows = [cols, "|---|---|---|---|" if env else "|---|---|---|"]
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        default = _default(model, name).replace("|", "\\|")
        if env:
            rows.append(f"| `{name}` | `{default}` | `{ENV_PREFIX}{name.upper()}` | {desc} |")
        else:
            rows.append(f"| `{name}` | `{default}` | {desc} |")
    return rows


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (``list[X]``, ``dict[str, X]``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _submodels(arg)]


def render() -> str:
    parts = [HEADER, "## Settings", "", *_table(Settings, True), ""]
    seen: set[type[BaseModel]] = set()
    queue = [(name, f.annotation) for name, f in Settings.model_fields.items()]
    while queue:
        name, annotation = queue.pop(0)
        for model in _submodels(annotation):
            if model in seen:
                continue
            seen.add(model)
            parts += [f"## `{name}` entries ({model.__name__})", "", *_table(model, False), ""]
            queue += [(f"{name}.{sub}", f.annotation) for sub, f in model.model_fields.items()]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
