# ruff: noqa: RUF001  (DeepSeek's markers use fullwidth bars on purpose)
"""The chat-template conformance matrix in docs/api-compatibility.md: every template of llama.cpp's
corpus (``template_corpus``), what lumbung does with it.

Per template: the tool-call family ``toolcalls.detect`` picks from it; the fixes its rendering needs
(``template_fixes``); whether it renders the conversation of ``template_conversation`` whole; whether
the calls it writes for an assistant turn (two parallel calls after reasoning, as the template itself
renders that turn) come back as the same calls through the family's parser, fed whole and a
character at a time (the stream must equal the whole parse); and whether the reasoning it writes
comes back as reasoning, apart from the answer. Nothing is typed by hand.
``tests/unit/test_template_corpus.py`` fails when the document is stale;
``python -m tests.support.template_conformance`` rewrites it.
"""

from __future__ import annotations

import json
import re
import sys

from lumbung import toolcalls
from lumbung.engines.base import Collector
from lumbung.engines.llamacpp import template_fixes
from lumbung.engines.llamacpp.templates import ChatTemplate
from lumbung.toolcalls.base import ToolFormat
from lumbung.toolcalls.output import OutputShaper
from lumbung.toolcalls.render import adapt_messages
from lumbung.types import ChatRequest, Chunk, Message, Usage
from tests.support import template_conversation as conv
from tests.support import template_corpus
from tests.support.conformance import DOC

BEGIN, END = "<!-- matrix: chat templates (generated) -->", "<!-- end matrix -->"
# What a turn ends with: special tokens (stop tokens, never text the parsers see) and whitespace.
# A turn's end: end-of-turn tokens, and the start of the next assistant turn that some templates
# (FireFunction v2) write even when no generation prompt is asked for.
_TURN_END = re.compile(
    r"(?:\s*(?:<\|[^<>|]*\|>|<｜[^<>｜]*｜>|</s>|<end_of_turn>|<turn\|>|(?<=<\|start_header_id\|>)assistant))*\s*$"
)
REASON, ANSWER = "The user wants a number; seven fits.", "Seven."


def _template(source: str) -> ChatTemplate:
    # No end-of-sequence text: a model's EOS is a stop token and never reaches the parsers.
    return ChatTemplate(source, bos_token="<s>", eos_token="")


def _written(template: ChatTemplate, fmt: ToolFormat, turn: Message) -> tuple[str, str]:
    """The prompt before an assistant turn, and the text the template writes for that turn: where
    the conversation with the turn and the prompt that asks for it part, after the user's question
    (at a marker's end, not inside one: ``<think>`` and ``<tool_call>`` share their ``<``)."""
    history = [Message("system", conv.SYSTEM), Message("user", conv.QUESTION)]
    request = ChatRequest(model="m", messages=[*history, turn], tools=conv.TOOLS)
    messages, tools = adapt_messages(request, fmt, template.source)
    asking = template.render(messages[:-1], tools=tools, add_generation_prompt=True)
    whole = template.render(messages, tools=tools, add_generation_prompt=False)
    start = whole.rfind(conv.QUESTION) + len(conv.QUESTION)
    asked = asking[asking.rfind(conv.QUESTION) + len(conv.QUESTION) :]
    common = 0
    while common < min(len(asked), len(whole) - start) and asked[common] == whole[start + common]:
        common += 1
    while common < len(asked) and common and asked[common - 1] not in "\n>]":
        common -= 1
    turn_text = whole[start + common :]
    return whole[: start + common], turn_text[: len(turn_text) - len(_TURN_END.search(turn_text).group(0))]  # type: ignore[union-attr]


def _shaped(fmt: ToolFormat, template: ChatTemplate, prompt: str, pieces: list[str]) -> Collector:
    shaper = OutputShaper(fmt=fmt, tools=conv.TOOLS, think=fmt.splitter(template.source, prompt))
    out = Collector()
    for piece in pieces:
        out.add(shaper.shape(Chunk(text=piece)))
    out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
    return out


def calls_read_back(template: ChatTemplate, fmt: ToolFormat) -> bool:
    # Templates that take one call per turn (Llama 3.x) are asked for one.
    calls = conv.CALLS[:1] if template_fixes.Fix.ONE_CALL_PER_TURN in template.fixes else conv.CALLS
    turn = Message("assistant", None, tool_calls=calls, reasoning=REASON)
    prompt, text = _written(template, fmt, turn)
    wanted = [(c.name, json.loads(c.arguments)) for c in calls]
    results = []
    for pieces in ([text], list(text)):
        try:
            got = _shaped(fmt, template, prompt, pieces).result()
        except Exception:  # a parser error is a "no" in the matrix, not a crash of the generator
            return False
        results.append([(c.name, json.loads(c.arguments)) for c in got.tool_calls])
    return results[0] == results[1] == wanted


def reasoning_read_back(template: ChatTemplate, fmt: ToolFormat) -> str:
    turn = Message("assistant", ANSWER, reasoning=REASON)
    prompt, text = _written(template, fmt, turn)
    if REASON not in text:
        return "not rendered"
    results = []
    for pieces in ([text], list(text)):
        got = _shaped(fmt, template, prompt, pieces).result()
        results.append((got.reasoning.strip(), REASON not in got.text and ANSWER in got.text))
    return "yes" if results[0] == results[1] == (REASON, True) else "**no**"


def row(name: str, source: str) -> str:
    fmt = toolcalls.detect(override=None, template=source, architecture="")
    template = _template(source)
    fixes = ", ".join(sorted(f.value for f in template.fixes)) or "none"
    try:
        renders = not conv.missing(conv.rendered(source))
    except Exception:
        renders = False
    calls = "yes" if calls_read_back(template, fmt) else "**no**"
    return f"| `{name}` | `{fmt.name}` | {fixes} | {'yes' if renders else '**no**'} | {calls} | {reasoning_read_back(template, fmt)} |"


def matrix(corpus: dict[str, str]) -> str:
    head = "| template | family | fixes applied | renders whole | calls read back | reasoning read back |"
    rule = "|---|---|---|---|---|---|"
    return "\n".join([BEGIN, head, rule, *(row(n, s) for n, s in corpus.items()), END])


def documented() -> str:
    found = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), DOC.read_text(), re.S)
    return found.group(0) if found else ""


def main() -> None:
    corpus = template_corpus.templates()
    if corpus is None:
        sys.exit("the package registry cannot be reached: no template corpus")
    text = DOC.read_text()
    generated = matrix(corpus)
    text = (
        text.replace(documented(), generated)
        if documented()
        else text.rstrip("\n") + "\n\n" + generated + "\n"
    )
    DOC.write_text(text)
    print(f"wrote the chat-template matrix to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
