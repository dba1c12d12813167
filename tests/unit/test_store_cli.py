"""The store's commands in process (click's runner) on small real GGUFs: output, exit codes, and
errors as one clear line instead of a traceback; progress as bars on a terminal, lines otherwise."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lumbung.cli import main
from lumbung.cli_store import ProgressView
from lumbung.store.pull import Progress
from tests.support.gguf_files import write_gguf


@pytest.fixture(autouse=True)
def keep_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--offline` switches the hub libraries off for the whole process, as it should in the CLI; here
    the process is the test run, so the switches are put back afterwards."""
    from lumbung.store.offline import OFFLINE_ENV

    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)


@pytest.fixture
def run(tmp_path: Path) -> object:
    env = {"LUMBUNG_HOME": str(tmp_path / "home"), "LUMBUNG_CONFIG": ""}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_pull_list_show_verify_rm(run: object, tmp_path: Path) -> None:
    invoke = run  # type: ignore[assignment]
    src = write_gguf(tmp_path / "tiny-Q8_0.gguf", file_type=7)
    ref = f"file:{src}"
    pulled = invoke("pull", ref)
    assert pulled.exit_code == 0 and pulled.output.strip().endswith(f"pulled {ref} (0.0 MB)")
    listing = invoke("list").output.splitlines()
    assert listing[0].split() == ["NAME", "SIZE", "QUANT", "FORMAT", "REFERENCE"]
    assert listing[1].split()[:4] == [ref, "0.0", "MB", "Q8_0"]
    shown = invoke("show", ref).output
    assert "licence     unknown" in shown and "(local)" in shown and "llama, 384 parameters, Q8_0" in shown
    manifest = json.loads(invoke("show", ref, "--json").output)
    assert manifest["source"] == {
        "kind": "file",
        "repo": None,
        "revision": None,
        "commit": None,
        "endpoint": None,
        "path": str(src),
    }
    assert json.loads(invoke("list", "--json").output)[0]["details"]["quantization_level"] == "Q8_0"
    assert invoke("verify").exit_code == 0
    blob = tmp_path / "home" / "models" / "blobs" / f"sha256-{manifest['files'][0]['sha256']}"
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x01")
    damaged = invoke("verify", ref)
    assert (
        damaged.exit_code == 1
        and "DAMAGED" in damaged.output
        and "1 model(s) failed verification" in damaged.output
    )
    removed = invoke("rm", ref)
    assert removed.exit_code == 0 and removed.output.startswith(f"removed {ref} (freed 0.0 MB)")
    assert invoke("list").output.splitlines()[1:] == []


def test_errors_are_one_clear_line(run: object, tmp_path: Path) -> None:
    invoke = run  # type: ignore[assignment]
    for args, message in [
        (("pull", "qwen2.5:0.5b-instrct"), "Did you mean qwen2.5:0.5b-instruct"),
        (("pull", "hf:a/b:../../x.gguf"), "refusing file name"),
        (("pull", f"file:{tmp_path / 'missing.gguf'}"), "no such file"),
        (("rm", "nope"), "'nope' is not in the store"),
        (("show", "nope"), "'nope' is not in the store"),
        (("import", str(tmp_path / "none.tar")), "no such bundle"),
        (("pull", "--offline", "hf:acme/x"), "not in the store and lumbung is offline"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 1 and result.output.startswith("Error: ") and message in result.output, (
            result.output
        )
        assert "Traceback" not in result.output
    assert invoke("pull").exit_code == 2


def test_catalogue_listing(run: object) -> None:
    out = run("pull", "--catalog").output  # type: ignore[operator]
    assert re.search(
        r"^qwen2\.5:0\.5b-instruct +hf:Qwen/Qwen2\.5-0\.5B-Instruct-GGUF:q4_k_m +apache-2\.0 +Qwen2\.5",
        out,
        re.M,
    )
    assert "gemma3:270m" in out and "nomic-embed-text:v1.5" in out
    assert re.search(r"^sea-lion3:8b +hf:aisingapore/\S+ +llama3\.1 +SEA-LION.*\[regional\]$", out, re.M)


def test_export_import_by_command(run: object, tmp_path: Path) -> None:
    invoke = run  # type: ignore[assignment]
    ref = f"file:{write_gguf(tmp_path / 'a.gguf')}"
    invoke("pull", ref)
    out = tmp_path / "b.tar"
    assert invoke("export", ref, "-o", str(out)).output.strip() == f"exported {ref} to {out}"
    other = CliRunner().invoke(main, ["import", str(out)], env={"LUMBUNG_HOME": str(tmp_path / "other")})
    assert other.exit_code == 0 and other.output.strip() == f"imported {ref}"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def events(total: int) -> list[Progress]:
    out = [Progress("pulling manifest")]
    out += [
        Progress("pulling m.gguf", "m.gguf", "sha256:ab", total, n) for n in range(0, total + 1, total // 40)
    ]
    return [*out, Progress("success")]


def test_plain_progress_lines_every_tenth() -> None:
    stream = io.StringIO()
    with ProgressView(stream) as view:
        for e in events(4_000_000):
            view(e)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    pct = [line for line in lines if line.startswith("pulling m.gguf: ")]
    assert (
        pct[0] == "pulling m.gguf: 0% (0.0 MB of 4.0 MB)"
        and pct[-1] == "pulling m.gguf: 100% (4.0 MB of 4.0 MB)"
    )
    assert len(pct) <= 12


def test_terminal_progress_draws_a_bar() -> None:
    stream = Terminal()
    with ProgressView(stream) as view:
        for e in events(4_000_000):
            view(e)
    text = stream.getvalue()
    assert "pulling m.gguf" in text and "4.0/4.0 MB" in text and "success" in text
