"""What a failed broker call means: the classification exactly-once depends on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from engine.brokers.base import Ambiguous, AuthExpired, RateLimited, Rejected, Unavailable
from engine.brokers.http import BrokerHttp, json_error_text
from engine.brokers.kite import KiteAdapter
from engine.brokers.pacing import KITE_LIMITS
from engine.brokers.session import BrokerSession


def client(handler: httpx.MockTransport) -> BrokerHttp:
    return BrokerHttp(
        broker="test",
        limits=KITE_LIMITS,
        error_text=json_error_text(("errors", "message"), ("message",)),
        is_auth_error=lambda r: r.status_code in (401, 403),
        transport=handler,
    )


def answering(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body, headers=headers))


def raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("transport", "outcome", "text"),
    [
        (raising(httpx.ConnectError("refused")), Unavailable, "not sent"),
        (raising(httpx.ConnectTimeout("slow connect")), Unavailable, "not sent"),
        (raising(httpx.ReadTimeout("no answer")), Ambiguous, "outcome unknown"),
        (raising(httpx.RemoteProtocolError("peer closed")), Ambiguous, "outcome unknown"),
        (answering(503, {"message": "down"}), Ambiguous, "HTTP 503: down"),
        (answering(429, {"message": "slow down"}, {"retry-after": "2"}), RateLimited, "slow down"),
        (answering(403, {"message": "token expired"}), AuthExpired, "token expired"),
        (answering(400, {"errors": [{"message": "price: off tick"}]}), Rejected, "price: off tick"),
    ],
)
async def test_failures_map_to_outcomes(transport: httpx.MockTransport, outcome: type, text: str) -> None:
    http = client(transport)
    with pytest.raises(outcome, match=text) as raised:
        await http.request("POST", "http://broker.test/orders", category="order")
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after == 2.0
    await http.close()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("Thu, 01 Jan 2099 00:00:00 GMT", None), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0), ("soon", 1.0)],
)
async def test_a_429_is_rate_limited_whatever_its_retry_after(header: str, seconds: float | None) -> None:
    """A date or an unreadable Retry-After must not turn a 429 (certainly not sent) into an unexpected error."""
    http = client(answering(429, {"message": "slow down"}, {"retry-after": header}))
    with pytest.raises(RateLimited) as raised:
        await http.request("POST", "http://broker.test/orders", category="order")
    if seconds is None:
        assert raised.value.retry_after > 365 * 86_400
    else:
        assert raised.value.retry_after == seconds
    await http.close()


async def test_success_is_returned() -> None:
    http = client(answering(200, {"status": "success", "data": {"order_id": "1"}}))
    response = await http.request("GET", "http://broker.test/orders", category="other")
    assert response.json()["data"] == {"order_id": "1"}
    await http.close()


async def test_kite_leaves_out_trades_in_products_the_daemon_does_not_model(tmp_path: Path) -> None:
    """An MTF trade made in Kite's own app must not fail every sync of the account."""
    row = {
        "trade_id": "1", "order_id": "9", "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY",
        "quantity": 1, "average_price": 1500.0, "fill_timestamp": "2026-11-23 09:15:00",
    }  # fmt: skip
    body = {"status": "success", "data": [{**row, "product": "MTF"}, {**row, "trade_id": "2", "product": "MIS"}]}
    kite = KiteAdapter(
        "k", api_key="key", api_secret="secret", base_url="http://kite.test", login_url="http://kite.test/login",
        cache_dir=tmp_path, transport=answering(200, body),
    )  # fmt: skip
    kite.use_session(BrokerSession("token", "AB1234", datetime(2100, 1, 1, tzinfo=UTC)))
    try:
        assert [t.trade_id for t in await kite.trades()] == ["2"]
    finally:
        await kite.close()
