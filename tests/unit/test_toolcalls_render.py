"""Tools and earlier calls reach the model: the built-in Gemma template and the family renderers."""

from __future__ import annotations

import json

from lumbung import toolcalls
from lumbung.engines.llamacpp.templates import ChatTemplate, builtin_source
from lumbung.toolcalls.render import adapt_messages
from lumbung.types import ChatRequest, Message, Tool, ToolCall

TOOLS = [Tool("get_time", "Time in a zone", {"type": "object", "properties": {"tz": {"type": "string"}}})]
HISTORY = [
    Message("system", "Be brief."),
    Message("user", "Time in Jakarta?"),
    Message("assistant", None, tool_calls=[ToolCall("call_1", "get_time", '{"tz": "WIB"}')]),
    Message("tool", '{"time": "12:00"}', tool_call_id="call_1"),
]


def gemma() -> ChatTemplate:
    return ChatTemplate(builtin_source("gemma"), bos_token="<bos>", eos_token="<eos>", name="gemma")


def test_gemma_template_describes_tools_in_the_first_turn() -> None:
    request = ChatRequest(model="m", messages=HISTORY, tools=TOOLS)
    template = gemma()
    messages, tools = adapt_messages(request, toolcalls.get("gemma"), template.source)
    text = template.render(messages, tools=tools)
    first_turn = text.split("<end_of_turn>")[0]
    assert "Be brief." in first_turn and '"name": "get_time"' in first_turn and "```tool_call" in first_turn
    assert text.endswith("<start_of_turn>model\n")


def test_gemma_template_writes_earlier_calls_in_the_format_its_parser_reads() -> None:
    template = gemma()
    text = template.render(HISTORY, tools=TOOLS)
    model_turn = text.split("<start_of_turn>model\n")[1].split("<end_of_turn>")[0]
    parser = toolcalls.get("gemma").parser(TOOLS)
    calls = parser.feed(model_turn).calls + parser.finish().calls
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_time", {"tz": "WIB"})]
    assert '```tool_result\n{"time": "12:00"}\n```' in text


def test_tool_choice_none_hides_the_tools() -> None:
    request = ChatRequest(model="m", messages=HISTORY[:2], tools=TOOLS, tool_choice="none")
    messages, tools = adapt_messages(request, toolcalls.get("gemma"), gemma().source)
    assert tools is None
    assert "get_time" not in gemma().render(messages, tools=tools)


def test_templates_without_tool_support_get_the_family_rendering() -> None:
    chatml = ChatTemplate(builtin_source("chatml"), bos_token="", eos_token="", name="chatml")
    request = ChatRequest(model="m", messages=HISTORY, tools=TOOLS)
    fmt = toolcalls.get("hermes")
    messages, tools = adapt_messages(request, fmt, chatml.source)
    text = chatml.render(messages, tools=tools)
    assert tools is None
    assert text.startswith("<|im_start|>system\nBe brief.\n\nYou may call these functions:")
    assert '<tool_call>\n{"name": "get_time", "arguments": {"tz": "WIB"}}\n</tool_call>' in text
