"""One conversation that exercises what clients send real chat templates every day.

A system prompt, tools, an assistant turn with reasoning and two parallel calls whose ``content`` is
null (OpenAI's shape, and every Anthropic ``tool_use``-only turn), the two results, a final answer
with reasoning, and a new question. ``rendered`` puts it through lumbung's own path: the model
family's history rendering (``toolcalls.render``) and the sandboxed template.
"""

from __future__ import annotations

import json

from lumbung import toolcalls
from lumbung.engines.llamacpp.templates import ChatTemplate
from lumbung.toolcalls.render import adapt_messages
from lumbung.types import ChatRequest, Message, Tool, ToolCall

SYSTEM = "You are a terse weather assistant."
QUESTION = "Weather and local time in Jakarta?"
RESULTS = ("31C and humid", "14:05 WIB")
TOOLS = [
    Tool(
        "get_weather",
        "Current weather in a city",
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    ),
    Tool(
        "get_time",
        "Local time in a time zone",
        {
            "type": "object",
            "properties": {"tz": {"type": "string", "description": "Zone"}},
            "required": ["tz"],
        },
    ),
]
CALLS = [
    ToolCall("call_weather_1", "get_weather", json.dumps({"city": "Jakarta", "days": 1})),
    ToolCall("call_time_2", "get_time", json.dumps({"tz": "Asia/Jakarta"})),
]
MESSAGES = [
    Message("system", SYSTEM),
    Message("user", QUESTION),
    Message("assistant", None, tool_calls=CALLS, reasoning="I need both the weather and the time."),
    Message("tool", RESULTS[0], tool_call_id=CALLS[0].id),
    Message("tool", RESULTS[1], tool_call_id=CALLS[1].id),
    Message("assistant", "31C and humid; it is 14:05.", reasoning="Both answers are in."),
    Message("user", "And tomorrow?"),
]


def rendered(source: str) -> str:
    """The prompt lumbung builds for the conversation with ``source`` as the model's template."""
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    fmt = toolcalls.detect(override=None, template=source, architecture="")
    request = ChatRequest(model="m", messages=MESSAGES, tools=TOOLS)
    messages, tools = adapt_messages(request, fmt, source)
    return template.render(messages, tools=tools)


def missing(prompt: str) -> list[str]:
    """What of the conversation the prompt lost."""
    wanted = [SYSTEM, QUESTION, *RESULTS, "get_weather", "get_time", "Jakarta", "Asia/Jakarta"]
    return [w for w in wanted if w not in prompt]
