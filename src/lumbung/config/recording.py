"""Recording and shadowing configuration: what a route records (``record``), where it mirrors live
requests (``shadow``), and the server-wide rules every recording obeys (``recording``: redaction,
size caps, retention, the writer's queue). See docs/migration.md."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RedactConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=list,
        description="JSON paths into each exchange whose values are replaced by `[REDACTED]` before it is "
        "written, e.g. `request.messages[*].content`, `request.user`, `response.choices[*].message.content` "
        "(`[*]`: every item, `[N]`: one item, `*`: every key).",
    )
    patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions (Python syntax); every match in any string of a recorded request "
        "or answer is replaced by `[REDACTED]` before it is written (e.g. card numbers, emails).",
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return value

    @field_validator("paths")
    @classmethod
    def _parses(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(r"(\$\.)?[^.\[\]]+(\[(\*|\d+)\])*(\.[^.\[\]]+(\[(\*|\d+)\])*)*", path):
                raise ValueError(f"invalid JSON path {path!r} (e.g. request.messages[*].content)")
        return value


class RecordingConfig(BaseModel):
    """Server-wide rules for every recording (routes' and keys' alike, shadow pairs included)."""

    model_config = ConfigDict(extra="forbid")

    redact: RedactConfig = Field(default_factory=RedactConfig, description="What never reaches disk.")
    max_exchange_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="An exchange larger than this (request and answer, as written) is not recorded (counted).",
    )
    max_recording_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=4096,
        description="A recording file stops growing at this size; later exchanges are not recorded (counted).",
    )
    retention_days: float | None = Field(
        default=30.0,
        gt=0,
        description="Exchanges older than this are deleted (at start-up, then hourly). None: kept forever.",
    )
    queue: int = Field(
        default=1024,
        ge=1,
        description="Exchanges waiting to be written; beyond it new ones are dropped (counted), never waited for.",
    )


class RouteRecordConfig(BaseModel):
    """A route's own recording: a sample of its requests, with their answers."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=1.0, ge=0, le=1, description="Fraction of the route's requests recorded.")
    name: str | None = Field(
        default=None, description="Recording name (default: the route's name), under HOME/recordings/."
    )


class ShadowConfig(BaseModel):
    """Mirror a fraction of a route's live requests to a candidate, in the background."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="A route or model name lumbung serves: the candidate.")
    fraction: float = Field(default=0.1, gt=0, le=1, description="Fraction of live requests mirrored.")
    queue: int = Field(
        default=64, ge=1, description="Mirrored requests waiting; beyond it they are dropped (counted)."
    )
    concurrency: int = Field(default=2, ge=1, le=64, description="Mirrored requests in flight at once.")
    timeout: float = Field(default=120.0, gt=0, description="Seconds a mirrored request may take.")
