"""Offline mode: no network call at all, from lumbung or from the libraries it uses.

lumbung itself never calls a hub when ``offline`` is set (pull.py refuses first). The hub libraries
also get their own switches, set in the environment before they are imported (huggingface_hub reads
``HF_HUB_OFFLINE`` at import time), so nothing they might do on their own (telemetry, version
checks, agent registries) reaches the network either.
"""

from __future__ import annotations

import os
import sys

from lumbung.settings import Settings

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
}


def apply_offline(settings: Settings) -> None:
    """Set every library's offline switch when ``settings.offline`` is on (idempotent)."""
    if not settings.offline:
        return
    os.environ.update(OFFLINE_ENV)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported already: its import-time reading of the switch is stale
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
