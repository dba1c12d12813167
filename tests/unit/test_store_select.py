"""Choosing files from a repository listing: quantisations, split GGUFs, defaults, and refusals."""

from __future__ import annotations

import pytest

from lumbung.errors import BadReference, UnsafeFile
from lumbung.store.refs import parse_reference
from lumbung.store.remote import RemoteFile
from lumbung.store.select import quant_of, select_files


def files(*names: str) -> list[RemoteFile]:
    return [RemoteFile(n, 10, "0" * 64) for n in names]


QWEN = files(
    "README.md",
    "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf",
    "qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf",
    "qwen2.5-7b-instruct-q4_k_s.gguf",
    "qwen2.5-7b-instruct-q8_0-00001-of-00003.gguf",
    "qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf",
    "qwen2.5-7b-instruct-q8_0-00003-of-00003.gguf",
    "mmproj-q4_k_m.gguf",
)


def chosen(listing: list[RemoteFile], ref: str) -> list[str]:
    return [f.path for f in select_files(listing, parse_reference(ref))]


def test_quant_picks_all_parts_of_a_split_model() -> None:
    assert chosen(QWEN, "hf:Qwen/X:q4_k_m") == [
        "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf",
        "qwen2.5-7b-instruct-q4_k_m-00002-of-00002.gguf",
    ]
    assert len(chosen(QWEN, "hf:Qwen/X:Q8_0")) == 3


def test_quant_match_is_exact_not_a_prefix() -> None:
    assert chosen(QWEN, "hf:Qwen/X:q4_k_s") == ["qwen2.5-7b-instruct-q4_k_s.gguf"]
    with pytest.raises(
        BadReference, match="no GGUF with quantisation 'q4_k'; available: q4_k_m, q4_k_s, q8_0"
    ):
        chosen(QWEN, "hf:Qwen/X:q4_k")


def test_naming_one_part_takes_the_whole_model() -> None:
    assert len(chosen(QWEN, "hf:Qwen/X:qwen2.5-7b-instruct-q8_0-00002-of-00003.gguf")) == 3


def test_incomplete_split_model_is_refused() -> None:
    listing = [f for f in QWEN if "00002-of-00003" not in f.path]
    with pytest.raises(BadReference, match=r"incomplete in the repository: parts \[1, 3\] of 3"):
        chosen(listing, "hf:Qwen/X:q8_0")


def test_default_is_the_only_gguf_else_q4_k_m() -> None:
    assert chosen(files("a.gguf", "README.md"), "hf:o/r") == ["a.gguf"]
    assert chosen(QWEN, "hf:Qwen/X")[0].endswith("q4_k_m-00001-of-00002.gguf")
    with pytest.raises(BadReference, match="several GGUF models; pick one with :QUANT"):
        chosen(files("m-Q8_0.gguf", "m-F16.gguf"), "hf:o/r")


def test_quant_names_in_the_wild() -> None:
    assert quant_of("nomic-embed-text-v1.5.Q4_K_M.gguf") == "Q4_K_M"
    assert quant_of("Qwen3-0.6B-UD-Q4_K_XL.gguf") == "UD-Q4_K_XL"
    assert quant_of("Llama-3.2-1B-Instruct-f16.gguf") == "F16"
    assert quant_of("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf") == "Q4_K_M"
    assert chosen(
        files("nomic-embed-text-v1.5.Q4_K_M.gguf", "nomic-embed-text-v1.5.f16.gguf"), "hf:o/r:q4_k_m"
    )


def test_safetensors_repo_takes_weights_and_their_config() -> None:
    listing = files(
        "config.json",
        "tokenizer.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "pytorch_model.bin",
        "README.md",
        "train.py",
    )
    assert chosen(listing, "hf:o/r") == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
    ]


def test_pickle_is_never_chosen() -> None:
    with pytest.raises(UnsafeFile, match="only pickle-based weights"):
        chosen(files("pytorch_model.bin", "config.json"), "hf:o/r")
    with pytest.raises(UnsafeFile, match="pickle-based weights can run code"):
        chosen(files("model.pt", "x.gguf"), "hf:o/r:model.pt")


def test_hostile_names_from_the_hub_are_refused_before_download() -> None:
    with pytest.raises(UnsafeFile, match=r"refusing hub file name '../../escape-q4_k_m.gguf'"):
        chosen(files("../../escape-q4_k_m.gguf"), "hf:o/r:q4_k_m")
    with pytest.raises(UnsafeFile):
        chosen(files("/abs/model.gguf"), "hf:o/r")


def test_missing_file_is_named() -> None:
    with pytest.raises(BadReference, match=r"has no file 'nope.gguf'"):
        chosen(QWEN, "hf:Qwen/X:nope.gguf")
