"""Configuration types: providers, routes, timeouts and local models, as parts of the one Settings
object (``lumbung/settings.py``).

A leaf package: it imports nothing else of lumbung, so engines, the gateway and settings all import
from it and no lower layer imports a higher one (tests/unit/test_layering.py holds that).
"""

from __future__ import annotations

from lumbung.config.limits import KeyLimitsConfig
from lumbung.config.models import (
    EMBEDDED_DEFAULT_ID,
    EMBEDDED_GEMMA_ID,
    AdapterConfig,
    AmxMode,
    KvCacheType,
    ModelConfig,
    RopeScaling,
    SpeculativeConfig,
    SpeculativeMode,
)
from lumbung.config.providers import (
    LOCAL_JURISDICTION,
    LOCAL_PROVIDER,
    CircuitConfig,
    ProviderConfig,
    Timeouts,
    allowed,
    jurisdiction_of,
)
from lumbung.config.recording import RecordingConfig, RedactConfig, RouteRecordConfig, ShadowConfig
from lumbung.config.routes import GatewayConfigError, RouteConfig, TargetConfig, check_gateway
from lumbung.config.vllm import BackoffConfig, FleetConfig, LaunchConfig

__all__ = [
    "EMBEDDED_DEFAULT_ID",
    "EMBEDDED_GEMMA_ID",
    "LOCAL_JURISDICTION",
    "LOCAL_PROVIDER",
    "AdapterConfig",
    "AmxMode",
    "BackoffConfig",
    "CircuitConfig",
    "FleetConfig",
    "GatewayConfigError",
    "KeyLimitsConfig",
    "KvCacheType",
    "LaunchConfig",
    "ModelConfig",
    "ProviderConfig",
    "RecordingConfig",
    "RedactConfig",
    "RopeScaling",
    "RouteConfig",
    "RouteRecordConfig",
    "ShadowConfig",
    "SpeculativeConfig",
    "SpeculativeMode",
    "TargetConfig",
    "Timeouts",
    "allowed",
    "check_gateway",
    "jurisdiction_of",
]
