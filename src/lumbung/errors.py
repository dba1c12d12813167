"""The one exception tree of lumbung.

    LumbungError
    ├── ConfigError                 settings or config file invalid (start-up)
    ├── ApiError                    a request that gets an error answer; carries status/type/code/param
    │   ├── InvalidRequest          400 invalid_request_error
    │   │   ├── UnsupportedParameter    400, a parameter lumbung refuses rather than ignores
    │   │   └── ContextLengthExceeded   400 context_length_exceeded
    │   ├── AuthenticationError     401
    │   ├── PermissionDenied        403
    │   ├── NotFound                404 (ModelNotFound: model_not_found)
    │   ├── PayloadTooLarge         413
    │   ├── RateLimited             429, with Retry-After
    │   ├── QuotaExceeded           429 insufficient_quota: a key's budget for its period is spent
    │   ├── Overloaded              503, with Retry-After (queue full, model loading)
    │   ├── UpstreamError           502/504, a backend failed
    │   │   ├── UpstreamTimeout         504, connect / first token / idle / overall deadline passed
    │   │   └── ProviderCutOff          a provider refuses this account or region (401/403/451)
    │   ├── ModelOutputError        500, the model broke a tool call after part of it was streamed
    │   ├── ModelUnavailable        500, the model's file is missing or broken: retrying cannot help
    │   └── InternalError           500, a bug: logged with its traceback
    ├── EngineError                 the local engine failed (load, decode); mapped to ApiError at the edge
    │   └── ModelFileError          a model's file is missing, truncated or not a GGUF (not temporary)
    ├── StoreError                  the model store (store/): pull, verify, bundles
    │   ├── BadReference            a model reference that cannot be parsed or names nothing
    │   ├── ModelNotInStore         no stored model has that name, reference or alias
    │   ├── HubError                a hub refused or failed (not found, gated, network)
    │   ├── OfflineError            the operation needs the network and lumbung is offline
    │   ├── UnsafeFile              a file the store refuses: pickle, unknown format, hostile name
    │   ├── InvalidModelFile        a GGUF or safetensors file that is truncated or malformed
    │   └── IntegrityError          bytes that do not match their published or recorded sha256/size
    ├── ReplayError                 a replay or its report cannot run (proof/): no such recording,
    │                               invalid thresholds, no embedding model to compare with
    └── RecordingError              a recording, or a file to import into one, that cannot be read
                                    or written (proof/): the message names the file and line

Each surface renders an ApiError in its own envelope (OpenAI, Anthropic, Ollama) in one place.
Foreign exceptions are mapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class LumbungError(Exception):
    """Base of every error lumbung raises on purpose."""


class ConfigError(LumbungError):
    """The settings or the config file are invalid."""


class EngineError(LumbungError):
    """The local engine could not load a model or decode a batch."""


class ModelFileError(EngineError):
    """A model (or adapter) file that is missing, truncated or not a GGUF: no retry helps until an
    operator replaces it."""


class ApiError(LumbungError):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationError(ApiError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ApiError):
    status = 403
    type = "permission_error"


class NotFound(ApiError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(ApiError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(ApiError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class QuotaExceeded(ApiError):
    """A virtual key spent its budget for the period (OpenAI's own code for an account out of
    credit); ``retry_after``: seconds until the period resets."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class Overloaded(ApiError):
    status = 503
    type = "overloaded_error"
    code = "overloaded"


class UpstreamError(ApiError):
    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ProviderCutOff(UpstreamError):
    code = "provider_cut_off"


class ModelOutputError(ApiError):
    """The model's output went wrong where it can no longer be shown as text (a tool call whose
    start has already been streamed); not a bug in lumbung."""

    status = 500
    type = "server_error"
    code = "invalid_model_output"


class ModelUnavailable(ApiError):
    """A served model whose file broke after start-up (deleted, truncated, overwritten): an
    operator must replace it, so no Retry-After."""

    status = 500
    type = "server_error"
    code = "model_unavailable"


class InternalError(ApiError):
    status = 500
    type = "server_error"
    code = "internal_error"


class StoreError(LumbungError):
    """The model store could not do what was asked; the message says what and why."""


class BadReference(StoreError):
    """A model reference that cannot be parsed, or a short name the catalogue does not know."""


class ModelNotInStore(StoreError):
    """No stored model answers to that name, reference or alias."""


class HubError(StoreError):
    """A model hub refused the request or could not be reached."""


class OfflineError(StoreError):
    """The operation needs the network, and lumbung runs offline."""


class UnsafeFile(StoreError):
    """A file the store will not accept: pickle weights, an unknown format, or a hostile name."""


class InvalidModelFile(StoreError):
    """A GGUF or safetensors file whose header or layout is truncated or malformed."""


class IntegrityError(StoreError):
    """Bytes that do not match their published or recorded sha256 or size."""


class ReplayError(LumbungError):
    """A replay or report cannot run: a missing recording, invalid thresholds, no embedding model."""


class RecordingError(LumbungError):
    """A recording, or a file to import into one, that cannot be read or written (names file and line)."""
