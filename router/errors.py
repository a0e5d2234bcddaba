"""OpenAI-shaped error answers: `{"error": {"message", "type", "param", "code"}}`, with their status."""

from __future__ import annotations

import json
import math

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
RATE_LIMIT = "rate_limit_error"
SERVICE_UNAVAILABLE = "service_unavailable_error"
UPSTREAM = "upstream_error"


class ApiError(Exception):
    """An answer the router gives instead of the engine's. `retry_after_s` becomes a Retry-After header."""

    def __init__(self, status: int, message: str, *, type: str, code: str, param: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def payload(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return json.dumps(self.payload()).encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after_s is None:
            return []
        # HTTP wants whole seconds; rounding up never invites a retry that is refused again.
        return [(b"retry-after", str(max(1, math.ceil(self.retry_after_s))).encode())]


def missing_api_key() -> ApiError:
    return ApiError(401, "Missing API key: send `Authorization: Bearer sk-inv-...`.", type=AUTHENTICATION,
                    code="invalid_api_key")


def invalid_api_key() -> ApiError:
    return ApiError(401, "Invalid or revoked API key.", type=AUTHENTICATION, code="invalid_api_key")


def bad_request(message: str, *, param: str | None = None) -> ApiError:
    return ApiError(400, message, type=INVALID_REQUEST, code="invalid_request", param=param)


def payload_too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, f"The request body is larger than {limit_bytes} bytes.", type=INVALID_REQUEST,
                    code="payload_too_large")


def model_not_found(model: str) -> ApiError:
    return ApiError(404, f"The model `{model}` does not exist.", type=INVALID_REQUEST, code="model_not_found",
                    param="model")


def not_an_embedding_model(model: str) -> ApiError:
    # vLLM itself answers 404 (0.34) or an error inside a 200 (0.11) here: the router says why, up front.
    return ApiError(400, f"The model `{model}` generates text: /v1/embeddings serves embedding models only "
                    "(task `embed` in the catalog).", type=INVALID_REQUEST, code="model_not_embedding", param="model")


def embedding_model_only(model: str, path: str) -> ApiError:
    return ApiError(400, f"The model `{model}` is an embedding model: it serves /v1/embeddings, not {path}.",
                    type=INVALID_REQUEST, code="model_is_embedding", param="model")


def path_not_found(path: str) -> ApiError:
    return ApiError(404, f"Unknown route {path}.", type=INVALID_REQUEST, code="not_found")


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(405, f"{method} is not allowed on {path}.", type=INVALID_REQUEST, code="method_not_allowed")


def model_not_allowed(model: str) -> ApiError:
    return ApiError(403, f"This API key may not use the model `{model}`.", type=PERMISSION,
                    code="model_not_allowed", param="model")


def budget_exceeded() -> ApiError:
    return ApiError(429, "This API key has used its monthly budget; ask an operator to raise it.",
                    type="insufficient_quota", code="budget_exceeded")


def rate_limited(message: str, *, retry_after_s: float) -> ApiError:
    return ApiError(429, message, type=RATE_LIMIT, code="rate_limit_exceeded", retry_after_s=retry_after_s)


def no_instance(model: str, *, retry_after_s: float) -> ApiError:
    return ApiError(503, f"No instance is ready to serve `{model}` right now; retry shortly.",
                    type=SERVICE_UNAVAILABLE, code="no_instance", retry_after_s=retry_after_s)


def hold_queue_full(model: str, *, retry_after_s: float) -> ApiError:
    return ApiError(429, f"The model `{model}` is starting and already has as many requests waiting as it may "
                         "hold; retry shortly.", type=RATE_LIMIT, code="hold_queue_full", retry_after_s=retry_after_s)


def hold_timeout(model: str, *, waited_s: float, retry_after_s: float) -> ApiError:
    return ApiError(503, f"No instance of `{model}` became ready within {waited_s:g} s while it was starting; "
                         "retry shortly.", type=SERVICE_UNAVAILABLE, code="hold_timeout", retry_after_s=retry_after_s)


def router_not_ready() -> ApiError:
    return ApiError(503, "The router has not loaded its routing table yet; retry shortly.",
                    type=SERVICE_UNAVAILABLE, code="router_starting", retry_after_s=1)


def upstream_failed(message: str) -> ApiError:
    return ApiError(502, message, type=UPSTREAM, code="upstream_error")


def router_failed() -> ApiError:
    """A fault of the router's own (logged where it happened)."""
    return ApiError(500, "The router failed on this request.", type="server_error", code="router_error")
