"""The agent's side of the control-plane protocol (described in PROTOCOL.md)."""

import json
from typing import Any

import aiohttp

from . import __version__

REQUEST_TIMEOUT_S = 10.0
# The longest `Retry-After` the agent honours: a larger one (a misconfigured proxy) must not silence it for hours.
MAX_RETRY_AFTER_S = 300.0
REGISTER_PATH = "/api/worker/register"
HEARTBEAT_PATH = "/api/worker/heartbeat"

JsonBody = dict[str, Any]


class ControlPlaneError(Exception):
    """The control plane could not be reached or refused the call; the agent retries."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        # Seconds the control plane asked the agent to wait (503 while its database is unreachable).
        self.retry_after = retry_after


class Unauthorized(ControlPlaneError):
    """401: the worker token is wrong or revoked."""


class NotRegistered(ControlPlaneError):
    """409 `{"error": "not registered"}`: the control plane forgot us; register again."""


class ControlPlaneClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, worker_token: str) -> None:
        self.session = session
        self.base_url = base_url
        self._headers = {
            "Authorization": f"Bearer {worker_token}",
            "User-Agent": f"inventiv-worker-agent/{__version__}",
        }

    async def register(self, payload: JsonBody) -> JsonBody:
        return await self._post(REGISTER_PATH, payload)

    async def heartbeat(self, payload: JsonBody) -> JsonBody:
        return await self._post(HEARTBEAT_PATH, payload)

    async def _post(self, path: str, payload: JsonBody) -> JsonBody:
        try:
            async with self.session.post(
                self.base_url + path,
                json=payload,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                status = response.status
                text = await response.text()
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ControlPlaneError(f"{path}: {type(exc).__name__}: {exc}") from None
        if status == 401:
            raise Unauthorized(f"{path}: 401 unauthorized (check the worker token)", status=status)
        if status == 409:
            raise NotRegistered(f"{path}: 409 {text[:200]}", status=status)
        if status != 200:
            raise ControlPlaneError(f"{path}: HTTP {status} {text[:200]}", status=status, retry_after=retry_after)
        try:
            body = json.loads(text)
        except ValueError:
            raise ControlPlaneError(f"{path}: answer is not JSON", status=status) from None
        if not isinstance(body, dict):
            raise ControlPlaneError(f"{path}: answer is not a JSON object", status=status)
        return body


def retry_after_seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` in seconds (the form the control plane sends), bounded; None when absent or a date."""
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else min(seconds, MAX_RETRY_AFTER_S)
