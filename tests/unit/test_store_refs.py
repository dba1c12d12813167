"""Model references and the catalogue: parsing, the canonical spelling, and refusing names that
could escape the store."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumbung.errors import BadReference, UnsafeFile
from lumbung.store.catalog import CATALOG
from lumbung.store.refs import check_relative_path, parse_reference


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF"),
        ("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m"),
        ("HF:org/repo@v1.0:q8_0", "hf:org/repo@v1.0:q8_0"),
        ("hf:org/repo@refs/pr/1:sub/Model-Q4_K_M.gguf", "hf:org/repo@refs/pr/1:sub/Model-Q4_K_M.gguf"),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            "hf:bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m",
        ),
        ("huggingface.co/org/repo", "hf:org/repo"),
        ("ms:Qwen/Qwen2.5-0.5B-Instruct-GGUF@master", "ms:Qwen/Qwen2.5-0.5B-Instruct-GGUF@master"),
        ("modelscope.cn/Qwen/Qwen3-0.6B-GGUF:Q8_0", "ms:Qwen/Qwen3-0.6B-GGUF:q8_0"),
        ("file:/models/x.gguf", "file:/models/x.gguf"),
    ],
)
def test_references_have_one_canonical_spelling(raw: str, canonical: str) -> None:
    ref = parse_reference(raw)
    assert ref.canonical() == canonical
    assert parse_reference(canonical).canonical() == canonical


def test_parts_of_a_reference() -> None:
    ref = parse_reference("hf:org/repo@abc123:Q4_K_M")
    assert (ref.kind, ref.repo, ref.revision, ref.selector) == ("hf", "org/repo", "abc123", "Q4_K_M")
    assert not ref.selects_file
    assert parse_reference("hf:org/repo").effective_revision() == "main"
    assert parse_reference("ms:org/repo").effective_revision() == "master"
    assert parse_reference("hf:org/repo:model.safetensors").selects_file


def test_short_names_come_from_the_catalogue() -> None:
    ref = parse_reference("qwen2.5:0.5b-instruct")
    assert ref.catalog_name == "qwen2.5:0.5b-instruct"
    assert ref.canonical() == "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m"
    assert parse_reference("gemma3:270m").kind == "embedded"
    assert parse_reference("smollm2:135m").canonical() == "embedded:smollm2-135m-instruct-q4_1"


def test_every_catalogue_entry_parses_and_names_are_unique() -> None:
    names = [e.name for e in CATALOG]
    assert len(names) == len(set(names))
    families = {n.split(":")[0].split("-")[0] for n in names}
    assert {"qwen3", "qwen2.5", "deepseek", "llama3.2", "gemma3", "nomic", "bge"} <= families
    assert any(e.embedding for e in CATALOG)
    for entry in CATALOG:
        assert parse_reference(entry.reference).kind in ("hf", "embedded")


def test_unknown_short_name_suggests_close_ones() -> None:
    with pytest.raises(BadReference, match=r"Did you mean qwen2.5:0.5b-instruct"):
        parse_reference("qwen2.5:0.5b-instrct")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "hf:",
        "hf:noslash",
        "hf:a/b/c",
        "hf:../x",
        "hf:a/..",
        "hf:a/b@",
        "hf:a/b@..:x",
        "hf:a/b:",
        "hf:a/b:$(rm)",
        "file:",
    ],
)
def test_bad_references_are_refused(raw: str) -> None:
    with pytest.raises((BadReference, UnsafeFile)):
        parse_reference(raw)


@pytest.mark.parametrize(
    "selector",
    ["../../etc/passwd.gguf", "/etc/x.gguf", "a/../../x.gguf", "a\\..\\x.gguf", "a//x.gguf", "x\x00.gguf"],
)
def test_hostile_file_selectors_are_refused(selector: str) -> None:
    with pytest.raises(UnsafeFile, match="refusing file name"):
        parse_reference(f"hf:org/repo:{selector}")


@given(st.text(alphabet="ab./\\\x00-_", min_size=1, max_size=12))
def test_accepted_relative_paths_never_escape(name: str) -> None:
    try:
        check_relative_path(name)
    except UnsafeFile:
        return
    normal = posixpath.normpath(name)
    assert not normal.startswith("/") and normal not in (".", "..") and not normal.startswith("../")
    assert "\\" not in name and "\x00" not in name


def test_the_pull_table_in_the_compatibility_doc_lists_every_field() -> None:
    import re
    from pathlib import Path

    from lumbung.surfaces.ollama_store_routes import PullBody

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api-compatibility.md").read_text()
    match = re.search(r"<!-- table: ollama.pull -->\n(.*?)<!-- end table -->", doc, re.S)
    assert match
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", match.group(1), re.M)}
    assert rows == set(PullBody.model_fields)
