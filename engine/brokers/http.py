"""The httpx plumbing every HTTP broker adapter shares: pacing, timeouts, and what a failure means.

The classification is the heart of exactly-once: a request that certainly never left (connection
refused, no free connection) is Unavailable and may go elsewhere; one that may have reached the
broker (timeout after sending, dropped connection, 5xx) is Ambiguous and must be reconciled by tag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from engine.brokers.base import Ambiguous, AuthExpired, BrokerError, RateLimited, Rejected, Unavailable
from engine.brokers.pacing import ORDERS, Pacer, Window, cautious

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)

ErrorText = Callable[[httpx.Response], str]
AuthCheck = Callable[[httpx.Response], bool]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BrokerHttp:
    """One account's connection to one broker host set."""

    def __init__(
        self,
        *,
        broker: str,
        limits: Mapping[str, Sequence[Window]],
        error_text: ErrorText,
        is_auth_error: AuthCheck,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.broker = broker
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        # Orders are paced by the account's OrderGate, at the account's configured rate.
        self._pacer = Pacer(cautious({k: v for k, v in limits.items() if k != ORDERS}), _utc_now)
        self._error_text = error_text
        self._is_auth_error = is_auth_error

    async def request(
        self, method: str, url: str, *, category: str, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request and return a 2xx response; anything else raises the matching BrokerError."""
        await self._pacer.acquire(category)
        try:
            response = await self._client.request(method, url, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Unavailable(f"{self.broker}: {method} {url} not sent: {type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:  # read/write timeouts, dropped connections: it may have arrived
            raise Ambiguous(f"{self.broker}: {method} {url} outcome unknown: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return response
        raise self._error(response)

    def _error(self, response: httpx.Response) -> BrokerError:
        status = response.status_code
        text = self._error_text(response)
        if status == 429:
            wait = _retry_after(response.headers.get("retry-after"))
            return RateLimited(f"{self.broker}: rate limited: {text}", wait)
        if self._is_auth_error(response):
            return AuthExpired(f"{self.broker}: session invalid: {text}")
        if status >= 500:
            return Ambiguous(f"{self.broker}: HTTP {status}: {text}")
        return Rejected(text)

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header, which may be a number or an HTTP date (RFC 9110); 1 when absent
    or unreadable, so a proxy's odd header still leaves a 429 a RateLimited rather than an error."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - _utc_now()).total_seconds())
    except (TypeError, ValueError):
        return 1.0


def json_error_text(*paths: Sequence[str]) -> ErrorText:
    """An ErrorText reading the first present string at any of `paths` in a JSON body."""

    def read(response: httpx.Response) -> str:
        try:
            body: Any = response.json()
        except ValueError:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        for path in paths:
            node = body
            for key in path:
                if isinstance(node, list):
                    node = node[0] if node else None
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, str) and node:
                return node
        return f"HTTP {response.status_code}"

    return read
