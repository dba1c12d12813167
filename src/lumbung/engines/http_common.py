"""What the upstream HTTP backends share: request bodies, server-sent-event parsing, and the mapping
of upstream failures (HTTP status, transport errors, in-band error events) onto lumbung's error tree.

The gateway decides failover from the error class alone: ``InvalidRequest`` is the client's fault and
is returned as is; every other ``ApiError`` moves the request on; ``ProviderCutOff`` also marks the
provider cut off.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from lumbung.config import ProviderConfig
from lumbung.engines import http1
from lumbung.errors import (
    ApiError,
    InvalidRequest,
    ProviderCutOff,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

# Words providers use when they refuse a region, a country or an account rather than a request
# (OpenAI: 403 unsupported_country_region_territory; Bedrock: 400 "not allowed from unsupported
# countries, regions, or territories"; accounts: "has been deactivated").
_CUT_OFF = re.compile(
    r"unsupported_country|unsupported countr|countr(?:y|ies),? regions?"
    r"|(?:region|country|territory|location).{0,30}not (?:supported|available|allowed|served)"
    r"|not available in your (?:country|region)|sanction"
    r"|(?:account|organization).{0,40}(?:disabled|suspended|deactivated|terminated|banned)",
    re.IGNORECASE,
)
_CLIENT_FAULT = {400, 413, 422}


def provider_pool(config: ProviderConfig, base_url: str, headers: dict[str, str]) -> http1.Pool:
    """A provider's keep-alive pool. Each wait for data is bounded by the longer of its first-token
    and idle timeouts; the gateway enforces both on top of it."""
    return http1.Pool(
        base_url,
        headers,
        limit=config.max_connections,
        connect_timeout=config.timeouts.connect,
        read_timeout=max(config.timeouts.idle, config.timeouts.first_token),
    )


def dumps(body: dict[str, Any]) -> bytes:
    """A request body as compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _message_of(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip()
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        parts = [str(err.get(k)) for k in ("message", "code", "type") if err.get(k)]
        return " ".join(parts)[:500]
    return str(err)[:500]


def status_error(provider: str, status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    """The error for a non-200 answer from a provider."""
    message = _message_of(body)
    said = f"provider {provider!r} answered {status}: {message}"
    if status == 451 or (status in (400, 401, 403) and _CUT_OFF.search(message)):
        return ProviderCutOff(said)
    if status == 429:
        return RateLimited(said, retry_after=retry_after(headers))
    if status in _CLIENT_FAULT:
        return InvalidRequest(message or said, code="upstream_rejected")
    if status == 504 or status == 408:
        return UpstreamTimeout(said)
    return UpstreamError(said)


def event_error(provider: str, error: Any) -> ApiError:
    """An error event inside an answer stream."""
    message = _message_of(json.dumps({"error": error}).encode())
    said = f"provider {provider!r} sent an error event: {message}"
    kind = error.get("type", "") if isinstance(error, dict) else ""
    if _CUT_OFF.search(message):
        return ProviderCutOff(said)
    if kind in ("rate_limit_error", "rate_limit_exceeded"):
        return RateLimited(said)
    return UpstreamError(said)


def transport_error(provider: str, exc: BaseException) -> ApiError:
    """The HTTP client's and asyncio's failures as lumbung errors."""
    if isinstance(exc, http1.ConnectFailed):
        return UpstreamError(f"provider {provider!r}: cannot connect ({exc})")
    if isinstance(exc, http1.ConnectTimeout):
        return UpstreamTimeout(f"provider {provider!r}: connect timed out")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"provider {provider!r}: no data within the timeout")
    if isinstance(exc, http1.ResponseBroken):
        return UpstreamError(f"provider {provider!r}: {exc}")
    return UpstreamError(f"provider {provider!r}: connection lost ({type(exc).__name__})")


TRANSPORT_ERRORS = (TimeoutError, OSError)


async def sse_events(provider: str, pieces: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of an SSE stream. Hand-written rather than httpx-sse because that decodes
    with replacement characters, and an upstream sending invalid UTF-8 must be an error, not mojibake."""
    buffer = b""
    event, data = "", list[str]()
    async for piece in pieces:
        buffer += piece
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                break
            raw, buffer = buffer[:cut], buffer[cut + 1 :]
            try:
                line = raw.rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UpstreamError(f"provider {provider!r} sent invalid UTF-8 in its stream") from exc
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", list[str]()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
    if data:
        yield event or "message", "\n".join(data)


async def sse_payload_batches(provider: str, pieces: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The ``data:`` payloads of the SSE events each network read completes, as bytes (the
    pass-through path re-frames them untouched, and sends one batch in one write). Checked to be
    UTF-8, which is cheap in C and keeps invalid bytes from reaching the client."""
    buffer = b""
    async for piece in pieces:
        buffer += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            continue
        events, buffer = buffer[:cut], buffer[cut + 2 :]
        try:
            events.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UpstreamError(f"provider {provider!r} sent invalid UTF-8 in its stream") from exc
        yield [line[5:].strip() for line in events.split(b"\n") if line.startswith(b"data:")]
    tail = buffer.strip()
    if tail.startswith(b"data:"):
        yield [tail[5:].strip()]
