"""The BERT-to-GGUF conversion's vocabulary: pieces as llama.cpp's WordPiece tokenizer reads them."""

from __future__ import annotations

import gguf
import pytest

from lumbung.errors import InvalidModelFile
from lumbung.store.bert_gguf import _vocab


def test_word_pieces_get_the_phantom_space_and_continuations_lose_their_hashes() -> None:
    tokenizer = {
        "model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "hello": 1, "##ing": 2, "[CLS]": 3}},
        "added_tokens": [{"content": "[PAD]", "special": True}, {"content": "[CLS]", "special": True}],
    }
    tokens, types, vocab = _vocab(tokenizer)
    assert tokens == ["[PAD]", "\u2581hello", "ing", "[CLS]"]
    assert types == [
        gguf.TokenType.CONTROL,
        gguf.TokenType.NORMAL,
        gguf.TokenType.NORMAL,
        gguf.TokenType.CONTROL,
    ]
    assert vocab["[CLS]"] == 3


def test_other_tokenizers_and_gapped_vocabularies_are_refused() -> None:
    with pytest.raises(InvalidModelFile, match="WordPiece"):
        _vocab({"model": {"type": "BPE", "vocab": {}}})
    with pytest.raises(InvalidModelFile, match="gaps"):
        _vocab({"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 2}}})
