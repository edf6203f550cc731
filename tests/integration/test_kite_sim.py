"""The Kite simulator judged by Zerodha's official `kiteconnect` SDK, and its shapes by Zerodha's own mocks.

One simulator serves the module on 127.0.0.1 under a SimClock the tests move: every test starts a
couple of simulated seconds after the previous one, so Kite's per-second limits never leak between
tests. Each test trades its own instruments, so its assertions do not depend on the others.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from engine.domain import Product, Side
from engine.ledger.charges import InstrumentKind, order_charges
from engine.sim.clock import SimClock
from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.server import SimServer

MOCKS = Path(__file__).resolve().parents[1] / "data" / "kite_mocks"
T0 = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # a Monday, 09:30 IST
API_KEY, API_SECRET = "kiteapp", "kitesecret"
DEAD_KEY, DEAD_SECRET = "deadapp", "deadsecret"  # an app whose postback receiver is down
TRADER, LIMITED, REVOKED, POOR = "ZS0001", "ZS0002", "ZS0003", "ZS0004"
PASSWORD = "pw"
Json = dict[str, Any]


# ---- a postback receiver --------------------------------------------------------------------------


class PostbackReceiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[Json] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._arrived:
                    receiver.bodies.append(body)
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/postback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def wait_for(self, matches: Callable[[Json], bool], timeout: float = 5) -> Json:
        with self._arrived:
            found = self._arrived.wait_for(lambda: next((b for b in self.bodies if matches(b)), None), timeout)
        assert found is not None, f"no matching postback within {timeout}s; got {self.bodies}"
        return found

    def __enter__(self) -> PostbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def unused_url() -> str:
    """A loopback URL nobody listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/postback"


# ---- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[PostbackReceiver]:
    with PostbackReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def clock() -> SimClock:
    return SimClock(T0)


@pytest.fixture(scope="module")
def server(receiver: PostbackReceiver, clock: SimClock) -> Iterator[SimServer]:
    settings = SimSettings(
        broker="kite",
        market=MarketSettings(volatility=0, price_band_percent=Decimal(10)),
        apps=[
            SimAppSettings(api_key=API_KEY, api_secret=API_SECRET, postback_url=receiver.url),
            SimAppSettings(api_key=DEAD_KEY, api_secret=DEAD_SECRET, postback_url=unused_url()),
        ],
        users=[
            SimUserSettings(
                user_id=TRADER,
                password=PASSWORD,
                name="Asha Trader",
                opening_cash=Decimal(50_000_000),
                holdings={"NSE:TCS": HoldingSeed(quantity=20, average_price=Decimal(3000))},
            ),
            SimUserSettings(user_id=LIMITED, password=PASSWORD),
            SimUserSettings(user_id=REVOKED, password=PASSWORD),
            SimUserSettings(user_id=POOR, password=PASSWORD, opening_cash=Decimal(1000)),
        ],
    )
    with SimServer(settings, clock=clock) as running:
        yield running


def step(clock: SimClock, seconds: float = 1.1) -> None:
    """Move simulated time on, past Kite's per-second request windows."""
    clock.set(clock() + timedelta(seconds=seconds))


@pytest.fixture(autouse=True)
def fresh_second(clock: SimClock) -> None:
    step(clock, 2)


def request_token(url: str, user_id: str, api_key: str = API_KEY, password: str = PASSWORD) -> str:
    """The browser part of Kite's login: the form, then the redirect carrying the request token."""
    with httpx.Client(base_url=url) as http:
        page = http.get("/connect/login", params={"api_key": api_key, "v": "3"})
        assert page.status_code == 200 and "name='user_id'" in page.text
        redirect = http.post("/connect/login", data={"api_key": api_key, "user_id": user_id, "password": password})
    assert redirect.status_code == 302, redirect.text
    location = httpx.URL(redirect.headers["location"])
    assert (location.params["action"], location.params["status"]) == ("login", "success")
    return location.params["request_token"]


def login(
    server: SimServer, user_id: str = TRADER, api_key: str = API_KEY, secret: str = API_SECRET, password: str = PASSWORD
) -> tuple[KiteConnect, Json]:
    kite = KiteConnect(api_key, root=server.url)
    session = kite.generate_session(request_token(server.url, user_id, api_key, password), api_secret=secret)
    return kite, session


@pytest.fixture(scope="module")
def kite(server: SimServer) -> KiteConnect:
    return login(server)[0]


def place(
    kite: KiteConnect,
    symbol: str,
    quantity: int = 1,
    *,
    side: str = "BUY",
    exchange: str = "NSE",
    product: str = "MIS",
    order_type: str = "LIMIT",
    variety: str = "regular",
    **extra: Any,
) -> str:
    return kite.place_order(
        variety=variety,
        exchange=exchange,
        tradingsymbol=symbol,
        transaction_type=side,
        quantity=quantity,
        product=product,
        order_type=order_type,
        **extra,
    )


def order_of(kite: KiteConnect, order_id: str) -> Json:
    return next(o for o in kite.orders() if o["order_id"] == order_id)


def tagged(kite: KiteConnect, tag: str) -> list[Json]:
    return [o for o in kite.orders() if o["tag"] == tag]


@pytest.fixture
def faults(server: SimServer) -> Iterator[Callable[..., None]]:
    """Set a fault rule on an endpoint through the admin API; every rule is cleared afterwards."""

    def set_fault(endpoint: str, **rule: Any) -> None:
        httpx.post(f"{server.url}/__sim__/faults", json={"endpoint": endpoint, **rule}).raise_for_status()

    yield set_fault
    httpx.delete(f"{server.url}/__sim__/faults").raise_for_status()


# ---- login and sessions ---------------------------------------------------------------------------


def test_login_issues_a_session_and_a_profile(server: SimServer) -> None:
    kite, session = login(server)
    assert session["user_id"] == TRADER and session["api_key"] == API_KEY
    assert kite.access_token == session["access_token"]
    assert datetime(2026, 11, 23, 9, 30) <= session["login_time"] < datetime(2026, 11, 23, 10, 0)  # IST wall time
    profile = kite.profile()
    assert (profile["user_id"], profile["user_name"], profile["user_shortname"]) == (TRADER, "Asha Trader", "Asha")
    assert profile["broker"] == "ZERODHA" and "SL-M" in profile["order_types"] and "NFO" in profile["exchanges"]


def test_login_refuses_wrong_password_checksum_and_reused_token(server: SimServer) -> None:
    refused = httpx.post(
        f"{server.url}/connect/login", data={"api_key": API_KEY, "user_id": TRADER, "password": "wrong"}
    )
    assert refused.status_code == 400 and "location" not in refused.headers
    token = request_token(server.url, TRADER)
    kite = KiteConnect(API_KEY, root=server.url)
    with pytest.raises(kex.TokenException) as caught:
        kite.generate_session(token, api_secret="not-the-secret")
    assert caught.value.code == 403 and "checksum" in str(caught.value)
    kite.generate_session(token, api_secret=API_SECRET)
    with pytest.raises(kex.TokenException):
        kite.generate_session(token, api_secret=API_SECRET)  # a request token is single-use


def test_invalidated_access_token_is_refused(server: SimServer, kite: KiteConnect) -> None:
    session, _ = login(server)
    assert session.invalidate_access_token() is True
    with pytest.raises(kex.TokenException) as caught:
        session.orders()
    assert caught.value.code == 403
    assert kite.profile()["user_id"] == TRADER  # the user's other session lives on


def test_revoked_tokens_are_refused(server: SimServer) -> None:
    revoked, _ = login(server, REVOKED)
    assert revoked.profile()["user_id"] == REVOKED
    httpx.post(f"{server.url}/__sim__/revoke", json={"user_id": REVOKED}).raise_for_status()
    with pytest.raises(kex.TokenException) as caught:
        revoked.profile()
    assert caught.value.code == 403


def test_tokens_expire_at_six_ist_the_next_morning() -> None:
    clock = SimClock(T0)
    with SimServer(SimSettings(broker="kite"), clock=clock) as server:
        kite, _ = login(server, "SIM001", "sim_api_key", "sim_api_secret", "sim")
        clock.set(datetime(2026, 11, 24, 0, 29, tzinfo=UTC))  # 05:59 IST
        assert kite.profile()["user_id"] == "SIM001"
        clock.set(datetime(2026, 11, 24, 0, 31, tzinfo=UTC))  # 06:01 IST
        with pytest.raises(kex.TokenException) as caught:
            kite.profile()
    assert caught.value.code == 403 and "expired" in str(caught.value)


# ---- orders ---------------------------------------------------------------------------------------


def test_limit_order_rests_is_modified_and_cancelled(kite: KiteConnect) -> None:
    order_id = place(kite, "INFY", 5, price=1500.0, tag="rest1")
    order = order_of(kite, order_id)
    assert (order["status"], order["pending_quantity"], order["price"], order["tag"]) == ("OPEN", 5, 1500.0, "rest1")
    assert order["variety"] == "regular" and order["exchange_order_id"] and not order["modified"]

    assert kite.modify_order("regular", order_id, quantity=6, price=1500.5) == order_id
    order = order_of(kite, order_id)
    assert (order["status"], order["quantity"], order["price"], order["modified"]) == ("OPEN", 6, 1500.5, True)

    assert kite.cancel_order("regular", order_id) == order_id
    order = order_of(kite, order_id)
    assert (order["status"], order["cancelled_quantity"], order["filled_quantity"]) == ("CANCELLED", 6, 0)
    history = kite.order_history(order_id)
    assert [h["status"] for h in history] == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "OPEN",
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "OPEN",
        "CANCEL PENDING",
        "CANCELLED",
    ]
    assert [h["price"] for h in history][3:7:3] == [1500.0, 1500.5]
    assert kite.order_trades(order_id) == []


def test_market_order_fills_and_uses_funds(kite: KiteConnect, clock: SimClock) -> None:
    before = kite.margins("equity")
    order_id = place(kite, "INFY", 10, product="CNC", order_type="MARKET", market_protection=-1, tag="mkt1")
    order = order_of(kite, order_id)
    assert (order["status"], order["filled_quantity"], order["pending_quantity"]) == ("COMPLETE", 10, 0)
    assert order["average_price"] == 1562.5 and order["market_protection"] == -1  # at the ask: last 1562.4 + 1 tick
    history = kite.order_history(order_id)
    assert [h["status"] for h in history] == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "OPEN",
        "COMPLETE",
    ]
    assert history[0]["exchange_order_id"] is None and history[-1]["exchange_order_id"] == order["exchange_order_id"]
    assert history[0]["order_timestamp"] == order["order_timestamp"] and isinstance(order["order_timestamp"], datetime)

    trades = kite.order_trades(order_id)
    assert [(t["quantity"], t["average_price"], t["transaction_type"]) for t in trades] == [(10, 1562.5, "BUY")]
    assert trades[0]["trade_id"] in {t["trade_id"] for t in kite.trades()}
    step(clock)
    infy = [p for p in kite.positions()["net"] if (p["tradingsymbol"], p["product"]) == ("INFY", "CNC")]
    assert [(p["quantity"], p["average_price"], p["last_price"], p["buy_value"]) for p in infy] == [
        (10, 1562.5, 1562.4, 15625.0)
    ]
    assert infy[0]["pnl"] == pytest.approx(-1.0)
    after = kite.margins("equity")
    assert before["net"] - after["net"] == pytest.approx(15625.0)
    assert after["utilised"]["debits"] - before["utilised"]["debits"] == pytest.approx(15625.0)


def test_stop_order_waits_for_its_trigger_and_a_market_modify_needs_protection(kite: KiteConnect) -> None:
    order_id = place(kite, "AXISBANK", 2, order_type="SL", price=1300.0, trigger_price=1299.0)
    order = order_of(kite, order_id)
    assert (order["status"], order["trigger_price"], order["price"]) == ("TRIGGER PENDING", 1299.0, 1300.0)
    with pytest.raises(kex.InputException, match=r"^market_protection"):
        kite.modify_order("regular", order_id, order_type="MARKET")
    kite.modify_order("regular", order_id, order_type="MARKET", market_protection=5)
    order = order_of(kite, order_id)
    assert (order["status"], order["order_type"], order["market_protection"]) == ("COMPLETE", "MARKET", 5)


def test_positions_convert_between_products(kite: KiteConnect) -> None:
    place(kite, "ITC", 10, order_type="MARKET", market_protection=-1)
    converted = kite.convert_position(
        exchange="NSE",
        tradingsymbol="ITC",
        transaction_type="BUY",
        position_type="day",
        quantity=10,
        old_product="MIS",
        new_product="CNC",
    )
    assert converted is True
    rows = {p["product"]: p for p in kite.positions()["net"] if p["tradingsymbol"] == "ITC"}
    assert (rows["MIS"]["quantity"], rows["CNC"]["quantity"], rows["CNC"]["average_price"]) == (0, 10, 404.9)
    with pytest.raises(kex.InputException, match="can be converted"):
        kite.convert_position("NSE", "ITC", "BUY", "day", 10, "MIS", "CNC")


def test_holdings_show_the_seeded_shares(kite: KiteConnect) -> None:
    (tcs,) = [h for h in kite.holdings() if h["tradingsymbol"] == "TCS"]
    assert (tcs["quantity"], tcs["average_price"], tcs["last_price"], tcs["close_price"]) == (
        20,
        3000.0,
        3148.7,
        3148.7,
    )
    assert tcs["pnl"] == pytest.approx(20 * 148.7) and tcs["instrument_token"] == 2953217 and tcs["product"] == "CNC"


def test_autoslice_splits_above_the_freeze_quantity(server: SimServer, kite: KiteConnect) -> None:
    response = kite.place_autoslice_order(
        variety="regular",
        exchange="NFO",
        tradingsymbol="NIFTY26NOVFUT",
        transaction_type="BUY",
        quantity=2600,
        product="NRML",
        order_type="LIMIT",
        price=26000.0,
        tag="slices",
    )
    children = [child["order_id"] for child in response["children"]]
    slices = {o["order_id"]: o for o in tagged(kite, "slices")}
    assert [slices[c]["quantity"] for c in children] == [1755, 845]  # 27 and 13 lots of 65 under the 1800 freeze
    assert all(f"autoslice:{response['order_id']}" in slices[c]["tags"] for c in children)
    with pytest.raises(kex.InputException, match="at most 10 slices"):
        kite.place_autoslice_order("regular", "NFO", "NIFTY26NOVFUT", "BUY", 19500, "NRML", "LIMIT", price=26000.0)

    poor, _ = login(server, POOR)
    refused = poor.place_autoslice_order("regular", "NFO", "NIFTY26NOVFUT", "BUY", 2600, "NRML", "LIMIT", price=26000.0)
    assert [c["error"]["error_type"] for c in refused["children"]] == ["MarginException", "MarginException"]
    assert shape(refused["children"][0]) == shape(mock("autoslice_response")["data"]["children"][2])


def test_iceberg_orders_carry_their_legs_and_other_varieties_are_refused(kite: KiteConnect) -> None:
    with pytest.raises(kex.InputException, match=r"^iceberg_legs"):
        place(kite, "HDFCBANK", 10, variety="iceberg", price=950.0, iceberg_legs=11, iceberg_quantity=1)
    order_id = place(kite, "HDFCBANK", 10, variety="iceberg", price=950.0, iceberg_legs=2, iceberg_quantity=5)
    order = order_of(kite, order_id)
    assert order["variety"] == "iceberg" and order["meta"]["iceberg"]["legs"] == 2
    assert order["meta"]["iceberg"]["leg_quantity"] == 5
    with pytest.raises(kex.InputException, match=r"^variety"):
        kite.cancel_order("regular", order_id)
    assert kite.cancel_order("iceberg", order_id) == order_id
    with pytest.raises(kex.InputException, match=r"^variety: amo"):
        place(kite, "HDFCBANK", 1, variety="amo", price=950.0)


# ---- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"symbol": "INFY", "price": 1500.05, "tag": "offtick"}, "off tick"),
        ({"symbol": "INFY", "price": 1800.0, "tag": "outofband"}, "outside the price band"),
        (
            {"symbol": "NIFTY26NOVFUT", "exchange": "NFO", "product": "NRML", "quantity": 1820, "price": 26400.0},
            "exceeds the freeze quantity",
        ),
    ],
    ids=["off-tick", "price-band", "freeze-quantity"],
)
def test_rms_refusals_are_input_exceptions_and_rejected_orders(
    kite: KiteConnect, fields: dict[str, Any], reason: str
) -> None:
    fields = {"quantity": 1, "tag": "frozen", **fields}
    symbol, quantity, tag = fields.pop("symbol"), fields.pop("quantity"), fields["tag"]
    with pytest.raises(kex.InputException, match=reason) as caught:
        place(kite, symbol, quantity, **fields)
    assert caught.value.code == 400
    rejected = tagged(kite, tag)[-1]
    assert rejected["status"] == "REJECTED" and reason in rejected["status_message"]
    assert rejected["exchange_order_id"] is None and rejected["pending_quantity"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"order_type": "MARKET"}, "market_protection"),
        ({"order_type": "SL-M", "trigger_price": 1600.0, "market_protection": 0}, "market_protection"),
        ({"order_type": "MARKET", "market_protection": 101}, "market_protection"),
        ({"quantity": 0, "price": 1500.0}, "quantity"),
        ({"price": "abc"}, "price"),
        ({"price": 1500.0, "validity": "TTL", "validity_ttl": 5}, "validity"),
        ({"price": 1500.0, "tag": "not-alnum!"}, "tag"),
        ({"price": 1500.0, "product": "MTF"}, "product"),
    ],
    ids=["market-no-protection", "slm-zero-protection", "protection-101", "quantity", "price", "ttl", "tag", "mtf"],
)
def test_form_refusals_name_the_field(kite: KiteConnect, fields: dict[str, Any], field: str) -> None:
    fields = {"tag": "formcheck", **fields}
    quantity = fields.pop("quantity", 1)
    with pytest.raises(kex.InputException) as caught:
        place(kite, "INFY", quantity, **fields)
    assert str(caught.value).startswith(f"{field}:") and caught.value.code == 400
    assert all(o["tag"] != "formcheck" for o in kite.orders())  # refused before the order book


def raw_error(server: SimServer, kite: KiteConnect, form: dict[str, str]) -> Json:
    """POST /orders/regular without the SDK, for the error_type on the wire."""
    headers = {"X-Kite-Version": "3", "Authorization": f"token {kite.api_key}:{kite.access_token}"}
    response = httpx.post(f"{server.url}/orders/regular", data=form, headers=headers)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    return response.json()


# The SDK has no MarginException or HoldingException class: it raises its GeneralException for those
# error types (keeping the HTTP code), so the wire's error_type is checked on a raw request as well.


def test_insufficient_funds_is_a_margin_exception(server: SimServer, kite: KiteConnect, clock: SimClock) -> None:
    with pytest.raises(kex.GeneralException, match="insufficient funds") as caught:
        place(kite, "INFY", 100_000, product="CNC", order_type="MARKET", market_protection=-1, tag="toobig")
    assert caught.value.code == 400
    assert [o["status"] for o in tagged(kite, "toobig")] == ["REJECTED"]
    form = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": "100000"}
    form |= {"product": "CNC", "order_type": "MARKET", "market_protection": "-1"}
    step(clock)
    error = raw_error(server, kite, form)
    assert (error["status"], error["error_type"], error["data"]) == ("error", "MarginException", None)


def test_selling_shares_not_held_is_a_holding_exception(server: SimServer, kite: KiteConnect) -> None:
    with pytest.raises(kex.GeneralException, match="insufficient holdings") as caught:
        place(kite, "SBIN", 5, side="SELL", product="CNC", price=962.35, tag="unheld")
    assert caught.value.code == 400
    form = {"exchange": "NSE", "tradingsymbol": "SBIN", "transaction_type": "SELL", "quantity": "5"}
    form |= {"product": "CNC", "order_type": "LIMIT", "price": "962.35"}
    assert raw_error(server, kite, form)["error_type"] == "HoldingException"


def test_unknown_orders_routes_and_api_versions(server: SimServer, kite: KiteConnect) -> None:
    with pytest.raises(kex.GeneralException) as caught:
        kite.order_history("999")
    assert caught.value.code == 404
    with pytest.raises(kex.OrderException):
        kite.cancel_order("regular", "999")
    missing = httpx.get(f"{server.url}/no/such/route")
    assert missing.status_code == 404 and missing.json()["error_type"] == "GeneralException"
    assert missing.headers["content-type"] == "application/json"
    old_api = httpx.get(f"{server.url}/instruments/NSE", headers={"X-Kite-Version": "2"})
    assert old_api.status_code == 400 and old_api.json()["message"].startswith("X-Kite-Version")


# ---- limits and faults ----------------------------------------------------------------------------


def test_eleventh_order_in_a_second_is_refused_with_429(
    server: SimServer, clock: SimClock, faults: Callable[..., None]
) -> None:
    limited, _ = login(server, LIMITED)
    for n in range(10):
        place(limited, "HDFCBANK", price=950.0, tag=f"burst{n}")
    with pytest.raises(kex.NetworkException) as caught:
        place(limited, "HDFCBANK", price=950.0, tag="burst10")
    assert caught.value.code == 429

    step(clock)
    faults("place", burst_429=1)
    with pytest.raises(kex.NetworkException) as caught:
        place(limited, "HDFCBANK", price=950.0)
    assert caught.value.code == 429
    assert place(limited, "HDFCBANK", price=950.0)  # the burst is spent


def test_quotes_are_limited_to_one_request_a_second(kite: KiteConnect) -> None:
    kite.ltp("NSE:INFY")
    with pytest.raises(kex.NetworkException) as caught:
        kite.ltp("NSE:INFY")
    assert caught.value.code == 429


def test_dropped_response_leaves_the_order_placed(kite: KiteConnect, faults: Callable[..., None]) -> None:
    faults("place", drop_rate=1)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        place(kite, "LT", price=4000.0, tag="dropped1")
    assert [o["status"] for o in tagged(kite, "dropped1")] == ["OPEN"]


def test_server_error_creates_no_order(kite: KiteConnect, faults: Callable[..., None]) -> None:
    faults("place", error_rate=1)
    with pytest.raises(kex.NetworkException) as caught:
        place(kite, "LT", price=4000.0, tag="errored1")
    assert caught.value.code == 503
    assert tagged(kite, "errored1") == []


# ---- postbacks ------------------------------------------------------------------------------------


def test_postbacks_are_signed_and_a_dead_receiver_blocks_nothing(
    server: SimServer, kite: KiteConnect, receiver: PostbackReceiver
) -> None:
    login(server, TRADER, DEAD_KEY, DEAD_SECRET)  # this app's postbacks go to a closed port
    order_id = place(kite, "SBIN", 2, order_type="MARKET", market_protection=-1, tag="pb1")
    body = receiver.wait_for(lambda b: b["order_id"] == order_id and b["status"] == "COMPLETE")
    signed = hashlib.sha256(f"{order_id}{body['order_timestamp']}{API_SECRET}".encode()).hexdigest()
    assert body["checksum"] == signed
    assert (body["user_id"], body["tag"], body["filled_quantity"], body["unfilled_quantity"]) == (TRADER, "pb1", 2, 0)
    assert isinstance(body["app_id"], int) and body["average_price"] == 962.4
    assert kite.profile()["user_id"] == TRADER


# ---- market data and instruments ------------------------------------------------------------------


def test_quotes_by_symbol_and_token(kite: KiteConnect, clock: SimClock) -> None:
    expected = {"instrument_token": 408065, "last_price": 1562.4}
    assert kite.ltp("NSE:INFY", "408065", "NSE:NOSUCH") == {"NSE:INFY": expected, "408065": expected}
    step(clock)
    quote = kite.quote("NSE:INFY")["NSE:INFY"]
    assert (quote["depth"]["buy"][0]["price"], quote["depth"]["sell"][0]["price"]) == (1562.3, 1562.5)
    assert (quote["lower_circuit_limit"], quote["upper_circuit_limit"]) == (1406.2, 1718.6)  # the 10% band
    assert isinstance(quote["timestamp"], datetime) and len(quote["depth"]["buy"]) == 5
    step(clock)
    ohlc = kite.ohlc("NSE:INFY")["NSE:INFY"]
    assert ohlc["ohlc"]["close"] == 1562.4 and ohlc["ohlc"]["low"] <= ohlc["last_price"] <= ohlc["ohlc"]["high"]


def test_instrument_dumps_are_csv_without_a_session(server: SimServer, kite: KiteConnect) -> None:
    nse = kite.instruments("NSE")
    assert {row["exchange"] for row in nse} == {"NSE"} and len(nse) == 28
    infy = next(row for row in nse if row["tradingsymbol"] == "INFY")
    assert (infy["instrument_token"], infy["tick_size"], infy["lot_size"]) == (408065, 0.1, 1)
    nifty = next(row for row in kite.instruments() if row["tradingsymbol"] == "NIFTY26NOVFUT")
    assert (nifty["lot_size"], nifty["expiry"]) == (65, date(2026, 11, 24))
    raw = httpx.get(f"{server.url}/instruments/NFO")
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/csv")
    assert raw.text.splitlines()[0].startswith("instrument_token,exchange_token,tradingsymbol")


# ---- calculators ----------------------------------------------------------------------------------


def test_margin_and_charges_calculators(kite: KiteConnect) -> None:
    buy = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "variety": "regular",
        "product": "MIS",
        "order_type": "LIMIT",
        "quantity": 10,
        "price": 1500,
    }
    (margin,) = kite.order_margins([buy])
    assert (margin["var"], margin["total"], margin["leverage"]) == (3000.0, 3000.0, 5.0)
    expected = order_charges("zerodha", InstrumentKind.EQUITY, Product.MIS, Side.BUY, 10, Decimal(1500))
    assert margin["charges"] == expected.to_kite_json()

    future = {**buy, "exchange": "NFO", "tradingsymbol": "NIFTY26NOVFUT", "product": "NRML", "quantity": 65}
    future["price"] = 26000
    basket = kite.basket_order_margins([future, {**future, "transaction_type": "SELL"}])
    assert basket["initial"]["total"] == pytest.approx(2 * 65 * 26000 * 0.2)
    assert basket["final"]["total"] == 0 and len(basket["orders"]) == 2

    sale = {**buy, "transaction_type": "SELL", "product": "CNC", "order_type": "MARKET", "average_price": 1560}
    del sale["price"]
    (note,) = kite.get_virtual_contract_note([{"order_id": "1", **sale}])
    delivery = order_charges("zerodha", InstrumentKind.EQUITY, Product.CNC, Side.SELL, 10, Decimal(1560))
    assert (note["price"], note["charges"]) == (1560.0, delivery.to_kite_json())


# ---- shapes against Zerodha's mocks ---------------------------------------------------------------

# Keys of the mock's first order (from 2021) that its 2025 entries add; the simulator speaks today's Kite.
NEWER_ORDER_KEYS: Json = {"account_id": None, "validity_ttl": None, "tags": [None]}
# Keys some mock orders carry that the simulator never produces, and why.
ORDER_KEYS_NOT_PRODUCED = {
    "auction_number": "only on auction-variety orders, which the simulator refuses",
    "terminal_id": "only on orders placed from a dealer terminal",
}


def mock(name: str) -> Json:
    return json.loads((MOCKS / f"{name}.json").read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    """Keys at every level; a list stands for its first element, a scalar for nothing."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def expected_shape(name: str) -> Any:
    reference = shape(mock(name))
    if name == "orders":
        reference["data"][0].update(NEWER_ORDER_KEYS)
    return reference


class RawKite:
    """Kite's API without the SDK, to see whole envelopes; it steps the clock past every rate window."""

    def __init__(self, url: str, clock: SimClock) -> None:
        self.http = httpx.Client(base_url=url, headers={"X-Kite-Version": "3"})
        self.clock = clock

    def login(self, user_id: str) -> Json:
        token = request_token(str(self.http.base_url), user_id)
        checksum = hashlib.sha256(f"{API_KEY}{token}{API_SECRET}".encode()).hexdigest()
        session = self.call(
            "POST", "/session/token", data={"api_key": API_KEY, "request_token": token, "checksum": checksum}
        )
        self.http.headers["Authorization"] = f"token {API_KEY}:{session['data']['access_token']}"
        return session

    def call(self, method: str, path: str, **kwargs: Any) -> Json:
        step(self.clock)
        response = self.http.request(method, path, **kwargs)
        assert response.headers["content-type"] == "application/json", response.text
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", body
        return body


@pytest.fixture(scope="module")
def sim_responses(server: SimServer, clock: SimClock, receiver: PostbackReceiver) -> Iterator[dict[str, Json]]:
    """One response of the simulator per mock, from a session of its own."""
    raw = RawKite(server.url, clock)
    seen = {"generate_session": raw.login(TRADER)}
    access_token = seen["generate_session"]["data"]["access_token"]
    for name, path in [
        ("profile", "/user/profile"),
        ("holdings", "/portfolio/holdings"),
        ("margins", "/user/margins"),
        ("margins_equity", "/user/margins/equity"),
        ("margin_commodity", "/user/margins/commodity"),
        ("ltp", "/quote/ltp?i=NSE:RELIANCE"),
        ("ohlc", "/quote/ohlc?i=NSE:RELIANCE"),
        ("quote", "/quote?i=NSE:RELIANCE"),
    ]:
        seen[name] = raw.call("GET", path)
    market = {"exchange": "NSE", "tradingsymbol": "RELIANCE", "transaction_type": "BUY", "product": "MIS"}
    seen["order_response"] = raw.call(
        "POST", "/orders/regular", data={**market, "quantity": "5", "order_type": "MARKET", "market_protection": "-1"}
    )
    filled = seen["order_response"]["data"]["order_id"]
    resting = raw.call(
        "POST", "/orders/regular", data={**market, "quantity": "3", "order_type": "LIMIT", "price": "1500"}
    )
    resting_id = resting["data"]["order_id"]
    seen["order_modify"] = raw.call("PUT", f"/orders/regular/{resting_id}", data={"price": "1500.5"})
    seen["order_cancel"] = raw.call("DELETE", f"/orders/regular/{resting_id}")
    seen["orders"] = raw.call("GET", "/orders")
    seen["order_info"] = raw.call("GET", f"/orders/{resting_id}")
    seen["order_trades"] = raw.call("GET", f"/orders/{filled}/trades")
    seen["trades"] = raw.call("GET", "/trades")
    seen["positions"] = raw.call("GET", "/portfolio/positions")
    conversion = {**market, "position_type": "day", "quantity": "5", "old_product": "MIS", "new_product": "CNC"}
    seen["convert_position"] = raw.call("PUT", "/portfolio/positions", data=conversion)
    order = {**market, "variety": "regular", "order_type": "LIMIT", "quantity": 5, "price": 1500}
    seen["order_margins"] = raw.call("POST", "/margins/orders", json=[order])
    seen["basket_margins"] = raw.call("POST", "/margins/basket", json=[order, {**order, "transaction_type": "SELL"}])
    seen["virtual_contract_note"] = raw.call("POST", "/charges/orders", json=[{**order, "average_price": 1500}])
    slices = {**market, "exchange": "NFO", "tradingsymbol": "NIFTY26NOVFUT", "product": "NRML", "order_type": "LIMIT"}
    seen["autoslice_response"] = raw.call(
        "POST", "/orders/regular", data={**slices, "quantity": "2600", "price": "26000", "autoslice": "true"}
    )
    seen["postback"] = receiver.wait_for(lambda b: b["order_id"] == filled and b["status"] == "COMPLETE")
    seen["session_logout"] = raw.call(
        "DELETE", "/session/token", params={"api_key": API_KEY, "access_token": access_token}
    )
    yield seen
    raw.http.close()


MOCK_NAMES = [
    "orders",
    "order_info",
    "order_trades",
    "trades",
    "positions",
    "holdings",
    "margins",
    "margins_equity",
    "margin_commodity",
    "ltp",
    "ohlc",
    "quote",
    "profile",
    "generate_session",
    "order_response",
    "order_modify",
    "order_cancel",
    "session_logout",
    "postback",
    "order_margins",
    "basket_margins",
    "virtual_contract_note",
    "autoslice_response",
    "convert_position",
]


@pytest.mark.parametrize("name", MOCK_NAMES)
def test_response_has_the_keys_of_zerodhas_mock(sim_responses: dict[str, Json], name: str) -> None:
    response = sim_responses[name]
    if name in ("ltp", "ohlc", "quote"):  # keyed by instrument: compare the one instrument of each
        response = {**response, "data": {"NSE:INFY": response["data"]["NSE:RELIANCE"]}}
    assert shape(response) == expected_shape(name)


def test_orders_carry_every_key_kite_sends(sim_responses: dict[str, Json]) -> None:
    every_key = set().union(*(order.keys() for order in mock("orders")["data"]))
    assert set(sim_responses["orders"]["data"][0]) == every_key - ORDER_KEYS_NOT_PRODUCED.keys()
    assert ORDER_KEYS_NOT_PRODUCED.keys() <= every_key
