"""Rate limits as configured: the limits every config-file key gets (virtual keys carry their own,
accounts/policy.py).

Part of the leaf ``lumbung.config`` package: it imports nothing of lumbung.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KeyLimitsConfig(BaseModel):
    """Limits of one key; unset: no such limit."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (prompt and answer) per minute.")
    max_concurrent: int | None = Field(default=None, ge=1, description="Requests at once.")
