"""Constrained decoding with llguidance: a token mask applied first in each sequence's sampler chain.

Why llguidance: it computes a mask over Gemma's 262k-token vocabulary in ~0.05 ms per token (measured
here, bench/structured.py), has no heavy dependencies, compiles JSON schemas and Lark grammars (tool
calls embed ``%json{...}``), and names the schema keywords it cannot enforce. xgrammar needs torch and
transformers; llama.cpp's own grammar sampler scans every candidate each token (see
docs/performance.md for the measured comparison).

``GrammarCompiler`` (one per model) builds the llguidance tokenizer once and compiles grammars;
``MaskSampler`` is a ``llama_sampler`` whose ``apply`` masks forbidden tokens and whose ``accept``
advances the matcher. The engine only sees it as one more sampler placed first in the chain.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import llama_cpp
import llguidance
import numpy as np

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.schemas import (
    JSON_OPTIONS,
    AnswerCheck,
    brief,
    client_reason,
    no_valid_value,
    prepare,
)
from lumbung.errors import ApiError, InternalError, InvalidRequest, UnsupportedParameter
from lumbung.toolcalls.base import Literal, ToolFormat, schema_of
from lumbung.types import ChatRequest, Tool

log = logging.getLogger(__name__)

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def lark_json(schema: dict[str, Any]) -> str:
    """A JSON schema embedded in a Lark grammar (llguidance's ``%json`` directive).

    ``lenient``: keywords the compiler cannot enforce are skipped. Only schemas that went through
    ``schemas.prepare`` get here, which refused such keywords where the client asked for strictness.
    """
    options = {**schema, "x-guidance": {**JSON_OPTIONS, "lenient": True}}
    return "%json " + json.dumps(options, ensure_ascii=False)


class GrammarCompiler:
    """Per model: the llguidance view of the vocabulary (built once, ~2 s) and grammar compilation."""

    def __init__(self, model: LlamaModel, end_tokens: Iterable[int]) -> None:
        self.model = model
        self.end_tokens = sorted({model.eos, *end_tokens})
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = _lltokenizer(self.model, self.end_tokens)
            return self._tokenizer

    def special_token(self, text: str) -> int | None:
        """The id of ``text`` when it is one token that grammars must name by id (see ``_is_special``)."""
        ids = self.model.tokenize(text, add_special=False, parse_special=True)
        if len(ids) == 1 and _is_special(self.model, ids[0], text.encode()):
            return ids[0]
        return None

    def literal(self, text: str) -> str:
        """``text`` as a Lark terminal: a special token by id where the vocabulary has one."""
        token = self.special_token(text)
        return f"<[{token}]>" if token is not None else json.dumps(text, ensure_ascii=False)

    def matcher(self, grammar: str, where: str) -> llguidance.LLMatcher:
        """Compile (may take a few ms; call off the event loop). Errors become a 400 naming ``where``."""
        matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            message = matcher.get_error()
            # Bounded: the message may quote the grammar, and with it the client's schema.
            log.info("grammar for %s (%d bytes) rejected: %s", where, len(grammar), brief(message))
            if "Unsatisfiable" in message:
                raise no_valid_value(where, message)
            raise UnsupportedParameter(
                f"The schema in '{where}' cannot be enforced: {client_reason(message)}", param=where
            )
        return matcher

    def sampler(self, matcher: llguidance.LLMatcher, trigger: Trigger | None = None) -> MaskSampler:
        return MaskSampler(matcher, self.model.n_vocab, self.end_tokens, trigger)


def _reason(matcher: llguidance.LLMatcher) -> str:
    return client_reason(matcher.get_error())


def _is_special(model: LlamaModel, token: int, text: bytes) -> bool:
    """Control tokens, and user-defined ones that look like tags (Qwen's ``<tool_call>``)."""
    attr = llama_cpp.llama_vocab_get_attr(model.vocab, token)
    if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
        return True
    return (
        bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED) and text.startswith(b"<") and text.endswith(b">")
    )


def _lltokenizer(model: LlamaModel, end_tokens: list[int]) -> llguidance.LLTokenizer:
    """llguidance's view of a llama.cpp vocabulary (like ``llguidance.llamacpp.lltokenizer_from_vocab``,
    which calls a deprecated function once per token, but with a byte-faithful tokenizer)."""
    buf = ctypes.create_string_buffer(1024)
    tokens: list[bytes] = []
    for token in range(model.n_vocab):
        n = llama_cpp.llama_token_to_piece(model.vocab, token, buf, len(buf), 0, True)
        piece = buf.raw[: max(n, 0)]
        if _is_special(model, token, piece):  # marked so that grammars tell them from text
            piece = b"\xff" + piece
        tokens.append(piece)
    wrapper = llguidance.TokenizerWrapper(_ExactTokenizer(model, tokens))
    return llguidance.LLTokenizer(wrapper, n_vocab=model.n_vocab, eos_token=end_tokens)


class _ExactTokenizer:
    """What llguidance asks of a tokenizer, spelling its input back byte for byte.

    llguidance tokenizes the text a grammar forces. SentencePiece vocabularies (Gemma's) turn "▁" into
    a space, and a grammar forcing "▁" (DeepSeek's markers) would then be offered a token it must
    reject (seen in tests/e2e/test_tools_families.py). So llama.cpp's tokenization is used only when
    its tokens spell the input exactly; otherwise the longest matching token is taken, byte by byte.
    """

    def __init__(self, model: LlamaModel, tokens: list[bytes]) -> None:
        self.model = model
        self.tokens = tokens
        self.eos_token_id = model.eos
        self.bos_token_id = model.bos if model.bos >= 0 else None
        self.special_token_ids = [i for i, t in enumerate(tokens) if t.startswith(b"\xff")]
        self._ids: dict[bytes, int] = {}
        for i, t in enumerate(tokens):
            if t and not t.startswith(b"\xff"):
                self._ids.setdefault(t, i)
        self._longest = max(len(t) for t in self._ids)

    def __call__(self, data: bytes) -> list[int]:
        ids = self.model.tokenize(data.decode("utf-8", "replace"), add_special=False, parse_special=False)
        if b"".join(self.tokens[i] for i in ids) == data:
            return ids
        out, i = [], 0
        while i < len(data):
            for n in range(min(self._longest, len(data) - i), 0, -1):
                token = self._ids.get(data[i : i + n])
                if token is not None:
                    out.append(token)
                    i += n
                    break
            else:
                i += 1  # a byte no token spells (a vocabulary without byte fallback): skipped
        return out


def _set_bits(words: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the set bits of a packed little-endian bitmask, below ``limit``, ascending."""
    nonzero = np.flatnonzero(words)
    bits = np.unpackbits(words[nonzero].view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    row, col = np.nonzero(bits)
    positions = nonzero[row] * 32 + col
    return positions[positions < limit]


@dataclass(slots=True)
class Trigger:
    """Constrain only once the output contains ``text`` (a call opening while ``tool_choice`` is auto)."""

    text: str
    piece: Callable[[int], str]  # a token's text as the parsers see it
    tokenize: Callable[[str], list[int]]


class MaskSampler:
    """A ``llama_sampler`` masking every token the grammar forbids; owned by the chain it joins.

    With a ``trigger`` it stays idle (free text) until the trigger text is written, then feeds the
    matcher everything from the trigger on and constrains the rest. Python keeps the interface struct
    and callbacks alive (``Sequence.sampler_pre`` holds this object); llama.cpp frees only the small
    ``llama_sampler`` it allocated in ``llama_sampler_init``.
    """

    def __init__(
        self,
        matcher: llguidance.LLMatcher,
        n_vocab: int,
        end_tokens: list[int],
        trigger: Trigger | None = None,
    ) -> None:
        self.trigger = trigger
        self.active = trigger is None
        self.tail = ""
        self.matcher = matcher
        self.n_vocab = n_vocab
        self.end_tokens = np.array(end_tokens, dtype=np.int64)
        self.mask = np.full((n_vocab + 31) // 32, -1, dtype=np.int32)
        self.failed = False
        self.reason = ""  # why it failed, for the client (see ``_reason``)
        self._iface = llama_cpp.llama_sampler_i()
        self._apply = llama_cpp.llama_sampler_i_apply(self._on_apply)
        self._accept = llama_cpp.llama_sampler_i_accept(self._on_accept)
        self._iface.apply = self._apply
        self._iface.accept = self._accept
        self._ptr: Any = None

    @property
    def ptr(self) -> Any:
        """Allocated on first use, so a request that never reaches the engine leaks nothing."""
        if self._ptr is None:
            self._ptr = llama_cpp.llama_sampler_init(ctypes.byref(self._iface), None)
        return self._ptr

    def _on_apply(self, _smpl: Any, cur_p: Any) -> None:
        if not self.active:
            return
        try:
            self._mask(cur_p.contents)
        except Exception:  # an exception cannot cross into C: end the answer rather than run free
            log.exception("constrained decoding: masking failed")
            self._fail("internal error while masking")
            data = np.ctypeslib.as_array(cur_p.contents.data, shape=(int(cur_p.contents.size),))
            ends = np.isin(data["id"], self.end_tokens)
            data["logit"][~ends] = -np.inf

    def _mask(self, arr: Any) -> None:
        size = int(arr.size)
        raw = (ctypes.c_char * (size * _TOKEN_DATA.itemsize)).from_address(
            ctypes.addressof(arr.data.contents)
        )
        data = np.frombuffer(memoryview(raw), dtype=_TOKEN_DATA)
        if self.failed or self.matcher.is_error():  # never emit garbage: only an end token remains
            if not self.failed:
                self._fail(_reason(self.matcher))
            self.mask[:] = 0
            self.mask.view(np.uint8)[:] = np.packbits(
                np.isin(np.arange(self.mask.size * 32), self.end_tokens), bitorder="little"
            )
        else:
            self.matcher.unsafe_compute_mask_ptr(self.mask.ctypes.data, self.mask.nbytes)
        if size != self.n_vocab or data["id"][-1] != self.n_vocab - 1:  # not in id order: the slow way
            allowed = np.unpackbits(self.mask.view(np.uint8), count=self.n_vocab, bitorder="little").view(
                bool
            )
            data["logit"][~allowed[data["id"]]] = -np.inf
            return
        # Touch only what changes (a full pass over 262k strided entries costs ~1 ms): keep just the
        # allowed tokens when they are few, else forbid the few that are not.
        if np.count_nonzero(self.mask) * 2 < self.mask.size:
            keep = _set_bits(self.mask, self.n_vocab)
            data[: len(keep)] = data[keep]
            arr.size = len(keep)
        else:
            data["logit"][_set_bits(~self.mask, self.n_vocab)] = -np.inf

    def forced(self) -> list[int]:
        """The tokens the grammar allows as the only continuation now (forced.py); [] while idle."""
        if not self.active or self.failed or self.matcher.is_error() or self.matcher.is_stopped():
            return []
        return list(self.matcher.compute_ff_tokens())

    def _fail(self, reason: str) -> None:
        self.failed = True
        self.reason = reason
        log.warning("constrained decoding stopped: %s (%s)", reason, brief(self.matcher.get_error()))

    def _on_accept(self, _smpl: Any, token: int) -> None:
        try:
            self._accept_token(token)
        except Exception:
            log.exception("constrained decoding: accepting token %d failed", token)
            self._fail("internal error while accepting a token")

    def _accept_token(self, token: int) -> None:
        if not self.active:
            self._watch(int(token))
            return
        if not self.matcher.consume_token(int(token)) and not self.failed:
            self._fail(_reason(self.matcher))

    def _watch(self, token: int) -> None:
        assert self.trigger is not None
        self.tail = (self.tail + self.trigger.piece(token))[-256:]
        start = self.tail.find(self.trigger.text)
        if start == -1:
            return
        self.active = True
        if not self.matcher.consume_tokens(self.trigger.tokenize(self.tail[start:])):
            self._fail(_reason(self.matcher))


@dataclass(slots=True)
class Plan:
    """The grammar a request's answer must follow, where it comes from, and when it starts."""

    grammar: str
    where: str
    trigger: str | None = None  # None: from the first token
    check: AnswerCheck | None = None  # what is validated once written (keywords the grammar skipped)


def grammar_failure(plan: Plan, sampler: MaskSampler) -> ApiError:
    """The error that ends an answer the grammar could not see through (never a silent invalid one)."""
    if sampler.reason.startswith("internal"):
        return InternalError("constrained decoding failed; the answer would not be valid")
    return InvalidRequest(
        f"The answer could not be completed under the schema in '{plan.where}': {sampler.reason}.",
        param=plan.where,
    )


def _named_tools(tools: list[Tool], request: ChatRequest) -> list[Tool]:
    choice = request.tool_choice
    if choice == "required":
        return tools
    name = choice.get("name") if isinstance(choice, dict) else None
    chosen = [t for t in tools if t.name == name]
    if not chosen:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': no function named {name!r} in 'tools'.", param="tool_choice"
        )
    return chosen


def json_schema_grammar(schema: dict[str, Any], where: str, *, strict: bool = True) -> str:
    """The Lark rule for one client schema (see ``schemas.prepare``: 400 for what cannot be honoured)."""
    return lark_json(prepare(schema, strict=strict, where=where).schema)


def request_grammar(request: ChatRequest, fmt: ToolFormat, lit: Literal) -> Plan | None:
    """The Lark grammar a request's output must follow; None: free text.

    A forced tool choice constrains the answer to calls in the model family's format. A JSON
    ``response_format`` constrains it to JSON (or, with tools on ``auto``, JSON or calls). Tools on
    ``auto`` alone leave the text free, but a call, once opened, must be well formed.
    """
    check = AnswerCheck(request.id)
    tools: list[Tool] = []
    for i, tool in enumerate(request.tools):  # every schema is checked, so a 400 names its keyword
        where = f"tools[{i}].function.parameters"
        ready = prepare(schema_of(tool), strict=tool.strict, where=where)
        tools.append(replace(tool, parameters=ready.schema) if ready.schema != tool.parameters else tool)
        if not tool.strict:  # a non-strict schema may also be skipped by a family's raw values
            check.tools[tool.name] = (where, ready)
    rf = request.response_format
    answer: str | None = None
    if rf.type == "json_object":
        answer = lark_json({"type": "object"})
    elif rf.type == "json_schema":
        where = "response_format.json_schema.schema"
        ready = prepare(rf.schema if rf.schema is not None else {}, strict=rf.strict, where=where)
        if ready.unenforced:
            check.answer = (where, ready)
        answer = lark_json(ready.schema)
    use_tools = bool(request.tools) and request.tool_choice != "none"
    forced = use_tools and request.tool_choice != "auto"
    if not use_tools:
        check.tools.clear()
        if answer is None:
            return None
        return Plan(f"start: answer\nanswer: {answer}\n", "response_format", check=check or None)
    if forced:
        tools = _named_tools(tools, request)
    # Named: one call, as OpenAI does. Otherwise at most one call per tool offered: a small model
    # left free to add calls may repeat them until max_tokens.
    most = len(tools) if request.parallel_tool_calls and request.tool_choice in ("required", "auto") else 1
    calls = fmt.grammar(tools, max_calls=most, lit=lit, json_rule=lark_json)
    if forced:
        return Plan(calls, "tools", check=check or None)
    if answer is None:
        return Plan(calls, "tools", trigger=fmt.trigger, check=check or None) if fmt.trigger else None
    calls = calls.replace("start:", "tool_calls:", 1)
    return Plan(
        f"start: answer | tool_calls\nanswer: {answer}\n{calls}", "response_format", check=check or None
    )
