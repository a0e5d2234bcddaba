"""One error type out of the SDK: every SDK, HTTP and network error becomes a ProviderError that says whether
a retry can help and, where it matters to the operator, which instance error code it maps to."""

from __future__ import annotations

import requests
from scaleway_core.api import ScalewayException, ValidationError

from providers.base import ProviderError, TransientProviderError

MAX_ERROR_TEXT = 300
# A Retry-After longer than this is taken as this: a task waits, it does not sleep for hours.
MAX_RETRY_AFTER_S = 600


def provider_error_from(exc: Exception, *, action: str, timeout_s: float) -> ProviderError:
    """The ProviderError that `exc`, raised while doing `action`, stands for."""
    if isinstance(exc, ScalewayException):
        status = exc.status_code or 0
        body = _error_body(exc.response)
        kind = str(body.get("type") or "")
        text = _error_text(body) or (exc.response.reason or "")
        message = f"Scaleway {action} failed (HTTP {status}{f' {kind}' if kind else ''}): {text}"
        lowered = text.lower()
        if kind == "out_of_stock" or "out of stock" in lowered:
            return ProviderError(message, code="PROVIDER_OUT_OF_STOCK")
        if kind == "quotas_exceeded" or "quota exceeded" in lowered:
            return ProviderError(message, code="PROVIDER_QUOTA_EXCEEDED")
        if isinstance(exc, ValidationError):
            return ProviderError(message)
        # A resource in a transient state (starting, stopping) accepts the action once it settles.
        transient = status == 429 or status >= 500 or kind == "transient_state"
        if not transient:
            return ProviderError(message, details=body.get("details") or body.get("fields"))
        return TransientProviderError(message, details=body.get("details") or body.get("fields"),
                                      retry_after=_retry_after(exc.response))
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientProviderError(f"Scaleway {action} timed out after {timeout_s:g}s")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # A gateway answering an HTML error page (502, 503) instead of the API.
        return TransientProviderError(f"Scaleway {action} got an answer that is not JSON (gateway error)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransientProviderError(f"Scaleway {action} could not reach the API: {type(exc).__name__}")
    return TransientProviderError(f"Scaleway {action} failed: {type(exc).__name__}")


def _error_body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(body: dict) -> str:
    text = body.get("message") or body.get("help_message") or ""
    if body.get("type") == "out_of_stock" and not text:
        text = f"{body.get('resource') or 'the resource'} is out of stock"
    details = body.get("details")
    if body.get("type") == "quotas_exceeded" and isinstance(details, list):
        quotas = ", ".join(
            f"{item.get('resource')} ({item.get('current')}/{item.get('quota')})"
            for item in details
            if isinstance(item, dict)
        )
        text = f"{text or 'quota(s) exceeded'}: {quotas}" if quotas else text
    if not text and isinstance(body.get("fields"), dict):
        text = "; ".join(f"{name}: {', '.join(map(str, problems))}" for name, problems in body["fields"].items())
    return str(text)[:MAX_ERROR_TEXT]


def _retry_after(response) -> float | None:
    """The seconds a throttled answer's `Retry-After` asks to wait (Scaleway sends seconds), or None."""
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else MAX_RETRY_AFTER_S if seconds > 0 else None
