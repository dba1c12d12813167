"""Stored Responses (OpenAI ``/v1/responses`` with ``store: true``): the response object as returned,
its input items, and the conversation it ends, so that ``previous_response_id`` continues it.

Each belongs to the key that created it (kept as the key's sha256 digest, never the key): other keys
find no such response, as OpenAI answers across projects; operator keys see all (docs/security.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from lumbung.accounts.keys import Caller
from lumbung.state.db import Base, Database
from lumbung.types import Message, ToolCall


class StoredResponseRow(Base):
    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(Integer, index=True)
    model: Mapped[str] = mapped_column(String(256))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)  # the response object, JSON
    input_items: Mapped[str] = mapped_column(Text)  # JSON list
    conversation: Mapped[str] = mapped_column(Text)  # JSON list of messages, instructions excluded
    # The creating key's sha256 digest; NULL for no keys configured, and in rows older than owners.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)


@dataclass(slots=True)
class StoredResponse:
    id: str
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[Message]


def message_to_dict(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.reasoning:
        out["reasoning"] = m.reasoning
    return out


def message_from_dict(d: dict[str, Any]) -> Message:
    return Message(
        role=d["role"],
        content=d.get("content"),
        name=d.get("name"),
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in d.get("tool_calls", [])],
        tool_call_id=d.get("tool_call_id"),
        reasoning=d.get("reasoning"),
    )


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(
        self,
        body: dict[str, Any],
        input_items: list[dict[str, Any]],
        conversation: list[Message],
        caller: Caller,
    ) -> None:
        row = StoredResponseRow(
            id=body["id"],
            created_at=int(body.get("created_at") or time.time()),
            model=body["model"],
            previous_response_id=body.get("previous_response_id"),
            body=json.dumps(body, ensure_ascii=False),
            input_items=json.dumps(input_items, ensure_ascii=False),
            conversation=json.dumps([message_to_dict(m) for m in conversation], ensure_ascii=False),
            owner=caller.owner,
        )
        async with self.db.session() as session, session.begin():
            await session.merge(row)

    async def get(self, response_id: str, caller: Caller) -> StoredResponse | None:
        """The response, or None when there is none that ``caller`` may see."""
        async with self.db.session() as session:
            row = await session.get(StoredResponseRow, response_id)
        if row is None or not caller.may_see(row.owner):
            return None
        return StoredResponse(
            id=row.id,
            body=json.loads(row.body),
            input_items=json.loads(row.input_items),
            conversation=[message_from_dict(d) for d in json.loads(row.conversation)],
        )

    async def delete(self, response_id: str, caller: Caller) -> bool:
        """Delete the response if ``caller`` may see it; False when there is none it may see."""
        async with self.db.session() as session, session.begin():
            row = await session.get(StoredResponseRow, response_id)
            if row is None or not caller.may_see(row.owner):
                return False
            await session.execute(delete(StoredResponseRow).where(StoredResponseRow.id == response_id))
        return True
