"""Anthropic Messages request as it arrives on the wire, validated strictly.

Content blocks are kept loose here (``type`` plus optional fields) so that the translator can refuse an
unsupported block type with a message naming it, instead of a generic union-mismatch error. Unknown
top-level fields are kept in ``model_extra``: accepted and logged once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Block(_Wire):
    """Any content block; the translator checks the fields its ``type`` needs."""

    type: str
    text: str | None = None
    # tool_use
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    # tool_result
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    # thinking
    thinking: str | None = None
    signature: str | None = None
    cache_control: dict[str, Any] | None = None


class MessageIn(_Wire):
    # "system": a system message mid-conversation (Claude Code sends them, beta
    # mid-conversation-system-2026-04-07)
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class ToolIn(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceIn(_Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingIn(_Wire):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None


class MetadataIn(_Wire):
    user_id: str | None = None


class OutputFormatIn(_Wire):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfigIn(_Wire):
    effort: str | None = None
    format: OutputFormatIn | None = None


class CountTokensIn(_Wire):
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[MessageIn], Field(min_length=1)]
    system: str | list[Block] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingIn | None = None
    output_config: OutputConfigIn | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    container: str | dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None


class MessagesRequestIn(CountTokensIn):
    max_tokens: Annotated[int, Field(ge=1)]
    stop_sequences: Annotated[list[str], Field(max_length=64)] | None = None
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    metadata: MetadataIn | None = None
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
