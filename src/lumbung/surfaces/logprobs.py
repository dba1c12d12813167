"""Token log-probabilities (core ``TokenLogprob``) in each API's shape, in one place."""

from __future__ import annotations

from typing import Any

from lumbung.types import TokenLogprob


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _token(t: TokenLogprob) -> dict[str, Any]:
    return {
        "token": t.token,
        "logprob": t.logprob,
        "bytes": t.bytes if t.bytes is not None else _bytes(t.token),
    }


def openai_chat(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """Chat Completions' ``choices[].logprobs`` (and each streamed chunk's)."""
    return {
        "content": [
            {
                **_token(t),
                "top_logprobs": [{"token": s, "logprob": lp, "bytes": _bytes(s)} for s, lp in t.top],
            }
            for t in tokens
        ],
        "refusal": None,
    }


def openai_legacy(tokens: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """Legacy completions' parallel lists; ``offset``: where the first token starts in the choice's text."""
    text_offset = []
    for token in tokens:
        text_offset.append(offset)
        offset += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": text_offset,
    }


def responses(tokens: list[TokenLogprob]) -> list[dict[str, Any]]:
    """Responses' ``output_text.logprobs``."""
    return [
        {**_token(t), "top_logprobs": [{"token": s, "logprob": lp, "bytes": _bytes(s)} for s, lp in t.top]}
        for t in tokens
    ]


def ollama(tokens: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [
        {**_token(t), "top_logprobs": [{"token": s, "logprob": lp, "bytes": _bytes(s)} for s, lp in t.top]}
        for t in tokens
    ]
