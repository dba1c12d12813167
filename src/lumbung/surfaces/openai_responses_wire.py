"""OpenAI Responses request (``POST /v1/responses``) as it arrives on the wire.

Input items and tools stay loose (``type`` plus optional fields) so the translator can refuse an
unsupported kind by name. Unknown top-level fields are kept in ``model_extra``: accepted, logged once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class ContentPartIn(_Wire):
    type: str
    text: str | None = None
    refusal: str | None = None


class ItemIn(_Wire):
    """A message (``role`` + ``content``), a function call, a function call's output, or reasoning."""

    type: str | None = None
    role: str | None = None
    content: str | list[ContentPartIn] | None = None
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    namespace: str | None = None  # a function call's namespace tool, as the answer reported it
    output: str | list[ContentPartIn] | None = None
    summary: list[ContentPartIn] | None = None
    # Calls of the client's non-function tools (openai_responses_client_tools.py)
    input: str | None = None  # custom_tool_call
    action: dict[str, Any] | None = None  # local_shell_call
    operation: dict[str, Any] | None = None  # apply_patch_call


class ToolIn(_Wire):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    tools: list[ToolIn] | None = None  # a namespace's function tools
    format: dict[str, Any] | None = None  # a custom tool's input format


class NamedToolChoiceIn(_Wire):
    type: str
    name: str | None = None


class TextFormatIn(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextIn(_Wire):
    format: TextFormatIn | None = None
    verbosity: str | None = None


class ReasoningIn(_Wire):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class CreateResponseIn(_Wire):
    model: Annotated[str, Field(min_length=1)]
    input: str | list[ItemIn] | None = None
    instructions: str | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    text: TextIn | None = None
    reasoning: ReasoningIn | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    service_tier: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
