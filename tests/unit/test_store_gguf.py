"""GGUF validation: real files built with ``gguf`` pass and yield their facts; truncated, malformed
and fuzzed files are refused with InvalidModelFile, never another exception."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumbung.errors import InvalidModelFile
from lumbung.store.gguf_info import check_split, facts, read_gguf
from tests.support.gguf_files import write_gguf


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "good.gguf", chat_template="{{ messages }}", file_type=15)


def test_facts_of_a_real_file_match_the_gguf_reader(good: Path) -> None:
    parsed = read_gguf(good)
    reader = gguf.GGUFReader(str(good))
    assert parsed.n_parameters == sum(int(t.n_elements) for t in reader.tensors)
    assert [t.name for t in parsed.tensors] == [t.name for t in reader.tensors]
    assert [t.n_bytes for t in parsed.tensors] == [int(t.n_bytes) for t in reader.tensors]
    assert parsed.data_offset == reader.data_offset
    got = facts([parsed])
    assert got.architecture == "llama" and got.name == "tiny llama"
    assert got.quantization == "Q4_K_M" and got.context_length == 2048
    assert got.chat_template is True and got.embedding is False and got.split_count == 1
    assert parsed.array_lengths["tokenizer.ggml.tokens"] == 100


def test_embedding_model_is_recognised_by_pooling(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "e.gguf", arch="bert", pooling=1)
    assert facts([read_gguf(path)]).embedding is True


def test_every_truncation_is_refused(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    cut = tmp_path / "cut.gguf"
    for n in [*range(0, 64), *range(64, len(data), 97), len(data) - 1]:
        cut.write_bytes(data[:n])
        with pytest.raises(InvalidModelFile, match=r"cut.gguf: "):
            read_gguf(cut)


def test_truncated_tensor_data_names_the_sizes(good: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(
        InvalidModelFile, match=r"truncated, the tensor data needs \d+ bytes but the file has"
    ):
        read_gguf(cut)


def _patched(good: Path, tmp_path: Path, offset: int, value: bytes) -> Path:
    data = bytearray(good.read_bytes())
    data[offset : offset + len(value)] = value
    out = tmp_path / "bad.gguf"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"GGML", "bad magic"),
        (4, struct.pack("<I", 1), "unsupported GGUF version 1"),
        (4, struct.pack("<I", 99), "unsupported GGUF version 99"),
        (8, struct.pack("<Q", 1 << 40), "exceed the file"),
        (16, struct.pack("<Q", 1 << 40), "exceed the file"),
        (24, struct.pack("<Q", 1 << 62), "is 4611686018427387904 bytes long"),
    ],
)
def test_malformed_headers_are_refused(
    good: Path, tmp_path: Path, offset: int, value: bytes, message: str
) -> None:
    with pytest.raises(InvalidModelFile, match=message):
        read_gguf(_patched(good, tmp_path, offset, value))


def test_unknown_value_type_is_refused(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    key = b"general.architecture"
    at = data.index(key) + len(key)  # the value type follows the key
    with pytest.raises(InvalidModelFile, match="unknown value type 77"):
        read_gguf(_patched(good, tmp_path, at, struct.pack("<I", 77)))


def test_tensor_offsets_must_follow_each_other(good: Path, tmp_path: Path) -> None:
    parsed = read_gguf(good)
    data = good.read_bytes()
    name = parsed.tensors[1].name.encode()
    at = data.index(name) + len(name) + 4 + 8 * len(parsed.tensors[1].shape) + 4  # n_dims, dims, type
    with pytest.raises(InvalidModelFile, match="has data offset 4096, expected"):
        read_gguf(_patched(good, tmp_path, at, struct.pack("<Q", 4096)))


def test_unknown_tensor_type_is_refused(good: Path, tmp_path: Path) -> None:
    parsed = read_gguf(good)
    data = good.read_bytes()
    name = parsed.tensors[0].name.encode()
    at = data.index(name) + len(name) + 4 + 8 * len(parsed.tensors[0].shape)
    with pytest.raises(InvalidModelFile, match="unknown type 999"):
        read_gguf(_patched(good, tmp_path, at, struct.pack("<I", 999)))


def test_not_a_gguf_at_all(tmp_path: Path) -> None:
    pickle_like = tmp_path / "model.gguf"
    pickle_like.write_bytes(b"\x80\x04\x95" + b"\x00" * 100)
    with pytest.raises(InvalidModelFile, match="bad magic"):
        read_gguf(pickle_like)


def test_split_parts_must_be_numbered_in_order(tmp_path: Path) -> None:
    parts = [
        read_gguf(write_gguf(tmp_path / f"m-0000{i + 1}-of-00002.gguf", split=(i, 2), seed=i))
        for i in range(2)
    ]
    check_split(parts)
    assert facts(parts).parameters == sum(p.n_parameters for p in parts)
    assert facts(parts).split_count == 2
    with pytest.raises(InvalidModelFile, match="part 1 of 2, but it is part 0 of 2"):
        check_split(list(reversed(parts)))
    with pytest.raises(InvalidModelFile, match="part 0 of 2, but it is part 0 of 1"):
        check_split(parts[:1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_files_are_refused_cleanly_or_accepted(tmp_path: Path, data: st.DataObject) -> None:
    """Flipped bytes anywhere in the header never escape as anything but InvalidModelFile."""
    source = tmp_path / "src.gguf"
    if not source.exists():
        write_gguf(source)
    raw = bytearray(source.read_bytes())
    header_end = read_gguf(source).data_offset
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, header_end - 1))
        raw[i] = data.draw(st.integers(0, 255))
    fuzzed = tmp_path / "fuzz.gguf"
    fuzzed.write_bytes(bytes(raw))
    with contextlib.suppress(InvalidModelFile):
        read_gguf(fuzzed)
