"""Traffic recorded elsewhere, as exchanges: so a team that never ran lumbung can replay its workload.

Two formats:
- OpenAI-format JSONL: one ``{"request": <chat completions body>, "response": <chat.completion>}``
  per line (optional ``id``, ``group``; a ``null`` response is a failed request);
- the OpenAI Batch API's files: the input (``{"custom_id", "method", "url", "body"}`` per line) and
  the output (``{"custom_id", "response": {"status_code", "body"}, "error"}``), paired by ``custom_id``.

Every problem is a ``RecordingError`` naming the file and line; nothing is written until the whole
input has been read (the caller writes the recording atomically).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lumbung.errors import RecordingError
from lumbung.proof.exchange import Exchange

CHAT_URL = "/v1/chat/completions"


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from exc
    with f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError as exc:
                    raise RecordingError(f"{path}:{number}: not valid JSON ({exc})") from exc
                if not isinstance(data, dict):
                    raise RecordingError(f"{path}:{number}: a JSON object is expected on each line")
                yield number, data
        except UnicodeDecodeError as exc:
            raise RecordingError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _check_request(where: str, request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise RecordingError(f"{where}: 'request' must be a chat completions request object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordingError(
            f"{where}: the request has no 'messages' (a chat completions request is expected)"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RecordingError(f"{where}: request.messages[{i}] is not a message with a 'role'")
    return request


def _check_response(where: str, response: Any) -> dict[str, Any] | None:
    if response is None:
        return None
    if (
        not isinstance(response, dict)
        or not isinstance(response.get("choices"), list)
        or not response["choices"]
    ):
        raise RecordingError(f"{where}: 'response' must be a chat.completion object with 'choices'")
    for i, choice in enumerate(response["choices"]):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise RecordingError(f"{where}: response.choices[{i}] has no 'message'")
    return response


def _exchange(
    rid: str, request: dict[str, Any], response: dict[str, Any] | None, now: float, **extra: Any
) -> Exchange:
    usage = (response or {}).get("usage")
    return Exchange(
        id=rid,
        request=request,
        response=response,
        # Imported now: retention counts from the import, not from when the traffic first ran.
        created=now,
        surface="import",
        route=request.get("model") if isinstance(request.get("model"), str) else None,
        stream=bool(request.get("stream")),
        error=extra.pop("error", None) if response is None else None,
        group=extra.pop("group", None),
        role="imported",
        extra={k: v for k, v in {**extra, "usage": usage}.items() if v is not None},
    )


def read_openai_jsonl(path: Path, now: float | None = None) -> list[Exchange]:
    """Exchanges from an OpenAI-format JSONL file (request and response per line)."""
    now = time.time() if now is None else now
    out: list[Exchange] = []
    seen: set[str] = set()
    for number, data in _lines(path):
        where = f"{path}:{number}"
        if "custom_id" in data and "body" in data:
            raise RecordingError(
                f"{where}: this is a Batch API input file; pass its output file with --batch-output"
            )
        if "request" not in data:
            raise RecordingError(
                f"{where}: each line needs 'request' (and 'response'): got {sorted(data)[:5]}"
            )
        request = _check_request(where, data["request"])
        response = _check_response(where, data.get("response"))
        rid = data.get("id") or (response or {}).get("id") or f"import-{number}"
        if not isinstance(rid, str) or rid in seen:
            rid = f"import-{number}"
        seen.add(rid)
        group = data.get("group") if isinstance(data.get("group"), str) else None
        out.append(
            _exchange(rid, request, response, now, group=group, error="failed" if response is None else None)
        )
    if not out:
        raise RecordingError(f"{path}: no request/response pairs in it")
    return out


def read_batch(input_path: Path, output_path: Path, now: float | None = None) -> list[Exchange]:
    """Exchanges from a Batch API input file and its output file, paired by ``custom_id``."""
    now = time.time() if now is None else now
    requests: dict[str, tuple[int, dict[str, Any]]] = {}
    for number, data in _lines(input_path):
        where = f"{input_path}:{number}"
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise RecordingError(f"{where}: no 'custom_id' (a Batch API input line is expected)")
        if custom_id in requests:
            raise RecordingError(f"{where}: custom_id {custom_id!r} also on line {requests[custom_id][0]}")
        url = data.get("url")
        if url != CHAT_URL:
            raise RecordingError(f"{where}: url {url!r}: only {CHAT_URL} requests can be replayed")
        requests[custom_id] = (number, _check_request(where, data.get("body")))
    answers: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    for number, data in _lines(output_path):
        where = f"{output_path}:{number}"
        custom_id = data.get("custom_id")
        if custom_id not in requests:
            raise RecordingError(f"{where}: custom_id {custom_id!r} is not in {input_path}")
        if custom_id in answers:
            raise RecordingError(f"{where}: a second answer for custom_id {custom_id!r}")
        response = data.get("response")
        error = data.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            answers[custom_id] = (_check_response(where, response.get("body")), None)
        else:
            code = (error or {}).get("code") if isinstance(error, dict) else None
            status = response.get("status_code") if isinstance(response, dict) else None
            answers[custom_id] = (None, str(code or (f"http_{status}" if status else "failed")))
    if not requests:
        raise RecordingError(f"{input_path}: no requests in it")
    missing = [(n, cid) for cid, (n, _) in requests.items() if cid not in answers]
    if missing:
        number, custom_id = missing[0]
        raise RecordingError(
            f"{input_path}:{number}: custom_id {custom_id!r} has no line in {output_path} "
            f"({len(missing)} request(s) unanswered; import the finished batch's output file)"
        )
    out = []
    for custom_id, (_, request) in requests.items():
        response, error = answers[custom_id]
        out.append(_exchange(custom_id, request, response, now, error=error, custom_id=custom_id))
    return out
