"""The layers import downwards only (docs/architecture.md): configuration types and core types at the
bottom, then engines, then the gateway, then surfaces. Checked on the source's import statements,
those inside functions included, so a lazy import cannot hide an upward dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Imported by everything, importing nothing of lumbung but themselves.
LEAVES = ("lumbung.config", "lumbung.errors", "lumbung.types", "lumbung.clock", "lumbung.aio")
# Layers above the engines: a backend never knows who asked, nor how the server is set up.
ABOVE_ENGINES = ("lumbung.gateway", "lumbung.surfaces", "lumbung.settings", "lumbung.server", "lumbung.cli")
# The drill runs the whole server in process around the gateway: an operations tool above it that
# lives in gateway/ for now (DESIGN.md's layout gives it drill/ of its own).
ABOVE_GATEWAY_EXEMPT = {"lumbung.gateway.drill"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every lumbung module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "lumbung" or name.startswith("lumbung.")}


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in (SRC / "lumbung").rglob("*.py")}


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(importer: tuple[str, ...] | str, imported: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph().items())
        if within(module, importer)
        for target in sorted(targets)
        if within(target, imported)
    ]


def test_the_graph_sees_imports_inside_functions() -> None:
    assert "lumbung.server" in graph()["lumbung.gateway.drill"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_a_leaf_imports_nothing_else_of_lumbung(leaf: str) -> None:
    bad = [
        f"{module} imports {target}"
        for module, targets in sorted(graph().items())
        if within(module, leaf)
        for target in sorted(targets)
        if target != "lumbung" and not within(target, leaf)
    ]
    assert not bad, bad


def test_engines_import_no_layer_above_them() -> None:
    assert not (bad := violations("lumbung.engines", ABOVE_ENGINES)), bad


def test_the_gateway_imports_no_surface() -> None:
    bad = [
        v
        for v in violations("lumbung.gateway", ("lumbung.surfaces",))
        if v.split()[0] not in ABOVE_GATEWAY_EXEMPT
    ]
    assert not bad, bad


def test_observability_sits_below_the_surfaces() -> None:
    """observe/ reads the gateway and the engines' stats; the surfaces serve it, never the reverse."""
    assert not (bad := violations("lumbung.observe", ("lumbung.surfaces", "lumbung.server"))), bad
    assert not (bad := violations(("lumbung.engines", "lumbung.gateway"), ("lumbung.observe",))), bad


def test_surfaces_reach_backends_only_through_the_gateway() -> None:
    """A surface may use the backend protocol's types (engines/base.py), never a backend itself."""
    bad = [
        v
        for v in violations("lumbung.surfaces", ("lumbung.engines",))
        if not within(v.split()[-1], "lumbung.engines.base")
    ]
    assert not bad, bad


def test_importing_settings_runs_no_engine_gateway_or_surface_code() -> None:
    code = (
        "import sys, lumbung.settings\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith(('lumbung.', 'llama_cpp'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = result.stdout.split()
    assert "lumbung.settings" in loaded
    bad = [m for m in loaded if not within(m, ("lumbung.settings", *LEAVES))]
    assert not bad, bad
