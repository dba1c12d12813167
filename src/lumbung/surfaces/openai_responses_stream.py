"""Streaming events of the Responses API, from ``response.created`` to ``response.completed``.

Each output item is announced (``output_item.added``), filled by deltas, and closed
(``output_item.done``); text lives in a content part (``content_part.added`` / ``.done``). Every
event carries a ``sequence_number``. The final event holds the whole response: ``response.completed``,
``response.incomplete`` (cut by max_output_tokens) or, after an error, ``response.failed``.
"""

from __future__ import annotations

from typing import Any

from lumbung.engines.base import Collector
from lumbung.errors import ApiError
from lumbung.surfaces import logprobs as lp
from lumbung.surfaces import openai_responses as orr
from lumbung.types import Chunk, Completion

Event = tuple[str, dict[str, Any]]
# A call of a client tool that is not a function (custom, local_shell, apply_patch) while its
# arguments stream: its item is built from them, and sent whole once they are complete.
CLIENT_CALL = "lumbung.client_call"


class ResponseEventWriter:
    def __init__(self, call: orr.ResponsesCall, model: str) -> None:
        self.call = call
        self.model = model
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # finished output items
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.collector = Collector()

    def _event(self, kind: str, **fields: Any) -> Event:
        body = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return kind, body

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        return orr.response_body(self.call, self.model, status=status, output=list(self.items), **kw)

    def start(self) -> list[Event]:
        snap = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snap),
            self._event("response.in_progress", response=snap),
        ]

    def _begin(self, item: dict[str, Any]) -> list[Event]:
        out = self._close()
        self.open = item
        index = len(self.items)
        # Announced empty: the item's text grows by the deltas that follow (a client that
        # accumulates them would otherwise see the first text twice).
        announced = {**item, "status": "in_progress"}
        if "content" in announced:
            announced["content"] = []
        out.append(self._event("response.output_item.added", output_index=index, item=announced))
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        elif item["type"] == "reasoning":
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part={"type": "reasoning_text", "text": ""},
                )
            )
        return out

    def _close(self, status: str = "completed") -> list[Event]:
        item = self.open
        if item is None:
            return []
        self.open = None
        if item["type"] == CLIENT_CALL:
            return self._client_call(item, status)
        index = len(self.items)
        out: list[Event] = []
        item["status"] = status
        if item["type"] in ("message", "reasoning"):
            part = item["content"][0]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            if item["type"] == "message":
                out.append(
                    self._event(
                        "response.output_text.done", **where, text=part["text"], logprobs=part["logprobs"]
                    )
                )
            else:
                out.append(self._event("response.reasoning_text.done", **where, text=part["text"]))
            out.append(self._event("response.content_part.done", **where, part=part))
        elif item["type"] == "function_call":
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    name=item["name"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.items.append(item)
        return out

    def _client_call(self, pending: dict[str, Any], status: str) -> list[Event]:
        """A call of a client tool that is not a function, announced and closed whole once its
        arguments are (its item's fields come from them)."""
        item = orr.call_item(
            self.call.tools, pending["core"], pending["call_id"], pending["arguments"], status
        )
        index = len(self.items)
        announced = {**item, "status": "in_progress"}
        if item["type"] == "custom_tool_call":
            announced["input"] = ""
        out = [self._event("response.output_item.added", output_index=index, item=announced)]
        if item["type"] == "custom_tool_call":
            where = {"item_id": item["id"], "output_index": index}
            out.append(self._event("response.custom_tool_call_input.delta", **where, delta=item["input"]))
            out.append(self._event("response.custom_tool_call_input.done", **where, input=item["input"]))
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.items.append(item)
        return out

    def events(self, chunk: Chunk) -> list[Event]:
        self.collector.add(chunk)
        out: list[Event] = []
        index = len(self.items)
        if chunk.reasoning:
            if self.open is None or self.open["type"] != "reasoning":
                out += self._begin(
                    {
                        "type": "reasoning",
                        "id": orr.item_id("rs"),
                        "summary": [],
                        "content": [{"type": "reasoning_text", "text": ""}],
                    }
                )
                index = len(self.items)
            assert self.open is not None
            self.open["content"][0]["text"] += chunk.reasoning
            out.append(
                self._event(
                    "response.reasoning_text.delta",
                    item_id=self.open["id"],
                    output_index=index,
                    content_index=0,
                    delta=chunk.reasoning,
                )
            )
        if chunk.text or (chunk.logprobs and self.call.logprobs):
            if self.open is None or self.open["type"] != "message":
                out += self._begin(
                    {
                        "type": "message",
                        "id": orr.item_id("msg"),
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
                    }
                )
                index = len(self.items)
            assert self.open is not None
            part = self.open["content"][0]
            part["text"] += chunk.text
            logprobs = lp.responses(chunk.logprobs) if self.call.logprobs else []
            part["logprobs"] += logprobs
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self.open["id"],
                    output_index=index,
                    content_index=0,
                    delta=chunk.text,
                    logprobs=logprobs,
                )
            )
        for call in chunk.tool_calls:
            # A call with an id opens a function_call item; a fragment without one continues it.
            if call.id or self.open is None or self.open["type"] not in ("function_call", CLIENT_CALL):
                call_id = call.id or orr.item_id("call")
                if self.call.tools.kind(call.name) != "function":
                    out += self._close()
                    self.open = {"type": CLIENT_CALL, "core": call.name, "call_id": call_id, "arguments": ""}
                else:
                    item = {
                        "type": "function_call",
                        "id": orr.item_id("fc"),
                        "call_id": call_id,
                        **self.call.tools.call_fields(call.name),
                        "arguments": "",
                    }
                    out += self._begin(item)
            assert self.open is not None
            if call.arguments:
                self.open["arguments"] += call.arguments
            if call.arguments and self.open["type"] == "function_call":
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=self.open["id"],
                        output_index=len(self.items),
                        delta=call.arguments,
                    )
                )
        if chunk.finish_reason is not None:
            status, reason = orr.status_of(chunk.finish_reason)
            if not self.items and self.open is None:  # an empty answer is still one (empty) message
                out += self._begin(
                    {
                        "type": "message",
                        "id": orr.item_id("msg"),
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
                    }
                )
            out += self._close("incomplete" if status == "incomplete" else "completed")
            final = self._snapshot(status, usage=chunk.usage, incomplete=reason)
            out.append(self._event(f"response.{status}", response=final))
        return out

    def final_body(self) -> dict[str, Any]:
        """The response as the last event carried it (for storing)."""
        done = self.completion()
        status, reason = orr.status_of(done.finish_reason)
        return self._snapshot(status, usage=done.usage, incomplete=reason)

    def completion(self) -> Completion:
        return self.collector.result()

    def failed(self, exc: ApiError) -> list[Event]:
        out = [self._event("error", code=exc.code, message=exc.message, param=exc.param)]
        out.append(self._event("response.failed", response=self._snapshot("failed", error=exc)))
        return out
