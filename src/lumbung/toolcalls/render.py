"""Tools and earlier calls for chat templates that cannot render them.

A template that never mentions ``tools`` gets them described in the system message in the family's
own words; one that never mentions ``tool_calls`` gets earlier calls written into the assistant's
text in the family's syntax, so the model sees the conversation as it would have produced it.
"""

from __future__ import annotations

from dataclasses import replace

from lumbung.toolcalls.arguments import arguments_value
from lumbung.toolcalls.base import ToolFormat
from lumbung.types import ChatRequest, Message, Tool


def _arguments(text: str) -> dict[str, object]:
    value = arguments_value(text)
    return value if isinstance(value, dict) else {"arguments": value}


def adapt_messages(
    request: ChatRequest, fmt: ToolFormat, template: str
) -> tuple[list[Message], list[Tool] | None]:
    """The messages and tools to hand the template."""
    messages = list(request.messages)
    tools = request.tools if request.tools and request.tool_choice != "none" else None
    if "tool_calls" not in template:
        messages = [
            replace(
                m,
                content="\n".join(
                    [
                        *([m.content] if m.content else []),
                        *(fmt.render_call(c.name, _arguments(c.arguments)) for c in m.tool_calls),
                    ]
                ),
                tool_calls=[],
            )
            if m.tool_calls
            else m
            for m in messages
        ]
    if tools and "tools" not in template:
        described = fmt.render_tools(tools)
        if messages and messages[0].role == "system":
            messages[0] = replace(messages[0], content=f"{messages[0].content or ''}\n\n{described}".strip())
        else:
            messages.insert(0, Message(role="system", content=described))
        tools = None
    return messages, tools
