"""The SDK's Instance and Block APIs with a deadline on every HTTP call, and `ScalewayClient.call`, the one
door every call goes through (it turns what the SDK raises into a ProviderError)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from scaleway.block.v1.api import BlockV1API
from scaleway.instance.v1.custom_api import InstanceUtilsV1API
from scaleway_core.api import APILogger, ScalewayException
from scaleway_core.client import Client

from providers.scaleway.errors import provider_error_from

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT_S = 30.0
# Opening a connection to the API gateway is quick when the network works: a slow connect is not worth
# the whole call budget.
MAX_CONNECT_TIMEOUT_S = 10.0
# The Instance API serves at most 100 items per page; fewer pages means fewer round trips.
PAGE_SIZE = 100
# No listing of ours has this many pages; the bound stops a misbehaving endpoint from looping us forever.
MAX_PAGES = 50


class _DeadlineMixin:
    """scaleway_core.api.API._request, sent with a timeout.

    The SDK's version calls `requests.request(...)` with no timeout, so a gateway that accepts the
    connection and never answers hangs the caller (a Celery worker) forever. This builds the request
    exactly as the SDK does (headers, auth, repeated params, the x-total-count rewrite that paginated
    answers rely on, the masked debug log) and adds `timeout`. A contract test checks both send the
    same bytes.
    """

    timeout: tuple[float, float]

    def _request(self, method, path, params=None, headers=None, body=None) -> requests.Response:
        method = method.upper()
        extra_headers = {}
        if method in ("POST", "PUT", "PATCH"):
            extra_headers["Content-Type"] = "application/json; charset=utf-8"
        raw_body = body if isinstance(body, bytes) else json.dumps({} if body is None else body)
        request_params = []
        for key, value in (params or {}).items():
            if value is None:
                continue
            request_params.extend((key, item) for item in (value if isinstance(value, list) else [value]))
        headers = {
            "accept": "application/json",
            "user-agent": self.client.user_agent,
            **extra_headers,
            **(headers or {}),
        }
        if self.client.secret_key is not None:
            headers["x-auth-token"] = self.client.secret_key
        url = f"{self.client.api_url}{path}"
        api_log = APILogger(self._log, self.client._increment_request_count())
        api_log.log_request(
            method=method,
            url=url,
            params=request_params,
            headers=headers,
            body=raw_body.decode("utf-8", errors="replace") if isinstance(raw_body, bytes) else raw_body,
        )
        response = requests.request(
            method=method,
            url=url,
            params=request_params,
            headers=headers,
            data=raw_body,
            verify=not self.client.api_allow_insecure,
            timeout=self.timeout,
        )
        if response.headers.get("x-total-count"):
            payload = response.json()
            payload["total_count"] = response.headers.get("x-total-count")
            response._content = json.dumps(payload).encode("utf-8")
        api_log.log_response(response=response)
        return response


class InstanceAPI(_DeadlineMixin, InstanceUtilsV1API):
    def __init__(self, client: Client, *, timeout: tuple[float, float]):
        super().__init__(client)
        self.timeout = timeout


class BlockAPI(_DeadlineMixin, BlockV1API):
    """Block Storage API v1 (generally available; v1alpha1 was its preview)."""

    def __init__(self, client: Client, *, timeout: tuple[float, float]):
        super().__init__(client)
        self.timeout = timeout


class ScalewayClient:
    """What every resource module works with: both APIs, the project, the page size and `call`.

    Raises ValueError when the SDK rejects the configuration (its message may quote the secret key).
    """

    def __init__(self, sdk_client: Client, *, project_id: str, call_timeout_s: float, page_size: int):
        timeout = (min(call_timeout_s, MAX_CONNECT_TIMEOUT_S), call_timeout_s)
        self.instance = InstanceAPI(sdk_client, timeout=timeout)
        self.block = BlockAPI(sdk_client, timeout=timeout)
        self.project_id = project_id
        self.call_timeout_s = call_timeout_s
        self.page_size = page_size

    def call(self, action: str, fn: Callable[..., T], /, *, missing_ok: bool = False, **kwargs) -> T | None:
        """Run one SDK call; None when the resource is gone and `missing_ok`."""
        try:
            return fn(**kwargs)
        except ScalewayException as exc:
            if missing_ok and exc.status_code == 404:
                return None
            raise provider_error_from(exc, action=action, timeout_s=self.call_timeout_s) from exc
        except requests.exceptions.RequestException as exc:
            raise provider_error_from(exc, action=action, timeout_s=self.call_timeout_s) from exc

    def all_pages(self, action: str, fn: Callable[..., Any], key: str, /, *, size_param: str = "per_page",
                  **kwargs) -> list:
        """Every item of a paginated listing (the `key` list of each page), at most MAX_PAGES pages.

        The SDK's `*_all` helpers ask for pages until one comes back empty, without a bound; this stops at
        the last page the total count announces, at a short page, or after MAX_PAGES (with a warning).
        """
        items: list = []
        for page in range(1, MAX_PAGES + 1):
            response = self.call(action, fn, page=page, **{size_param: self.page_size}, **kwargs)
            batch = list(getattr(response, key) or [])
            items.extend(batch)
            total = getattr(response, "total_count", None)
            if len(batch) < self.page_size or (total is not None and len(items) >= int(total)):
                return items
        log.warning("Scaleway %s: stopped after %d pages (%d items)", action, MAX_PAGES, len(items))
        return items
