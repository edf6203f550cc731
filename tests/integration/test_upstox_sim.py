"""The simulated Upstox judged by the official upstox-python-sdk: requests and answers go through its models.

One simulator serves the module. Each concern trades as its own user, so one test's orders never count
towards another's rate limits, and every test logs in afresh, so revocation and expiry tests leave no
stale token behind. Prices are flat (volatility 0): INFY trades at 1562.4, bid 1562.3, ask 1562.5.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import upstox_client
import urllib3
from upstox_client.rest import ApiException

from engine.domain.sessions import IST
from engine.sim.clock import SimClock
from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.server import SimServer

START = datetime(2026, 11, 10, 10, 0, tzinfo=IST)  # a Tuesday, in market hours
APP = SimAppSettings(api_key="upx_client", api_secret="upx_secret", redirect_url="http://127.0.0.1:9/callback")
INFY = "NSE_EQ|INE009A01021"
TCS = "NSE_EQ|INE467B01029"
RELIANCE = "NSE_EQ|INE002A01018"
NIFTY_FUT = "NSE_FO|52168"  # NFO:NIFTY26NOVFUT, lot 65, freeze quantity 1800
TRADER, REFUSED, PACED, FAULTY, FUNDED = "UPX001", "UPX002", "UPX003", "UPX004", "UPX005"
V = "2.0"  # the Api-Version header the SDK's v2 calls require


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    users = [
        SimUserSettings(
            user_id=TRADER,
            opening_cash=Decimal(50_000_000),
            holdings={"NSE:TCS": HoldingSeed(quantity=10, average_price=Decimal(3000))},
        ),
        *(SimUserSettings(user_id=u) for u in (REFUSED, PACED, FAULTY, FUNDED)),
    ]
    settings = SimSettings(
        broker="upstox",
        market=MarketSettings(volatility=0, price_band_percent=Decimal(10)),
        apps=[APP],
        users=users,
    )
    with SimServer(settings, clock=SimClock(START)) as sim:
        yield sim


def sdk(server: SimServer, token: str = "") -> upstox_client.ApiClient:
    config = upstox_client.Configuration()
    config.host = config.order_host = server.url
    config.access_token = token
    return upstox_client.ApiClient(config)


def authorization_code(server: SimServer, user_id: str, state: str = "xyz") -> str:
    """Drive the login dialog as a browser would, and read the code from the redirect."""
    query = {"response_type": "code", "client_id": APP.api_key, "redirect_uri": APP.redirect_url, "state": state}
    with httpx.Client(base_url=server.url) as http:
        page = http.get("/v2/login/authorization/dialog", params=query)
        assert page.status_code == 200
        assert 'name="password"' in page.text
        form = {**query, "user_id": user_id, "password": "sim"}
        answer = http.post("/v2/login/authorization/dialog", data=form)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == APP.redirect_url
    params = parse_qs(location.query)
    assert params["state"] == [state]
    return params["code"][0]


def exchange_code(server: SimServer, code: str) -> upstox_client.TokenResponse:
    return upstox_client.LoginApi(sdk(server)).token(
        V,
        code=code,
        client_id=APP.api_key,
        client_secret=APP.api_secret,
        redirect_uri=APP.redirect_url,
        grant_type="authorization_code",
    )


def login(server: SimServer, user_id: str) -> upstox_client.ApiClient:
    token = exchange_code(server, authorization_code(server, user_id)).access_token
    return sdk(server, token)


def limit_buy(
    instrument: str, quantity: int, price: float, tag: str, product: str = "I"
) -> upstox_client.PlaceOrderRequest:
    return upstox_client.PlaceOrderRequest(
        quantity=quantity,
        product=product,
        validity="DAY",
        price=price,
        tag=tag,
        instrument_token=instrument,
        order_type="LIMIT",
        transaction_type="BUY",
        disclosed_quantity=0,
        trigger_price=0.0,
        is_amo=False,
    )


def error_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["status"] == "error"
    (error,) = body["errors"]
    assert error["error_code"] == error["errorCode"]
    assert error["property_path"] == error["propertyPath"]
    assert error["invalid_value"] == error["invalidValue"]
    return error


def book_by_tag(client: upstox_client.ApiClient, tag: str) -> list[upstox_client.OrderBookData]:
    return [o for o in upstox_client.OrderApi(client).get_order_book(V).data if o.tag == tag]


def set_fault(server: SimServer, **rule: Any) -> None:
    httpx.post(f"{server.url}/__sim__/faults", json=rule).raise_for_status()


def clear_faults(server: SimServer) -> None:
    httpx.delete(f"{server.url}/__sim__/faults").raise_for_status()


@pytest.fixture(scope="module")
def market_fill(server: SimServer) -> str:
    """TRADER buys 5 INFY intraday at market: the fill that trades, positions and history tests read."""
    client = login(server, TRADER)
    order = upstox_client.PlaceOrderRequest(
        quantity=5,
        product="I",
        validity="DAY",
        price=0.0,
        tag="mkt1",
        instrument_token=INFY,
        order_type="MARKET",
        transaction_type="BUY",
        disclosed_quantity=0,
        trigger_price=0.0,
        is_amo=False,
    )
    return upstox_client.OrderApi(client).place_order(order, V).data.order_id


# ---- login ----------------------------------------------------------------------------------------


def test_oauth_code_flow_yields_a_session_and_profile(server: SimServer) -> None:
    code = authorization_code(server, TRADER)
    token = exchange_code(server, code)
    assert token.user_id == TRADER
    assert token.broker == "UPSTOX"
    assert token.products == ["I", "D"]
    assert token.order_types == ["MARKET", "LIMIT", "SL", "SL-M"]
    assert {"NSE", "BSE", "NFO"} <= set(token.exchanges)
    assert token.is_active is True
    assert token.access_token
    with pytest.raises(ApiException) as reused:
        exchange_code(server, code)
    assert reused.value.status == 401
    profile = upstox_client.UserApi(sdk(server, token.access_token)).get_profile(V).data
    assert (profile.user_id, profile.user_name, profile.email) == (TRADER, "Sim User", "sim@example.invalid")


def test_login_dialog_refuses_a_foreign_redirect_uri(server: SimServer) -> None:
    query = {"response_type": "code", "client_id": APP.api_key, "redirect_uri": "https://evil.example/cb"}
    answer = httpx.get(f"{server.url}/v2/login/authorization/dialog", params=query)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["propertyPath"] == "redirect_uri"


def test_logout_ends_the_session(server: SimServer) -> None:
    client = login(server, TRADER)
    assert upstox_client.LoginApi(client).logout(V).data is True
    with pytest.raises(ApiException) as ended:
        upstox_client.UserApi(client).get_profile(V)
    assert ended.value.status == 401
    assert error_of(ended.value)["errorCode"] == "UDAPI100050"


# ---- orders ---------------------------------------------------------------------------------------


def test_limit_order_rests_is_modified_and_cancelled(server: SimServer) -> None:
    orders = upstox_client.OrderApi(login(server, TRADER))
    order_id = orders.place_order(limit_buy(INFY, 2, 1500.0, "rest1", product="D"), V).data.order_id
    details = orders.get_order_status(order_id=order_id).data
    assert (details.status, details.price, details.quantity, details.pending_quantity) == ("open", 1500.0, 2, 2)
    assert (details.tag, details.instrument_token, details.product, details.trading_symbol) == (
        "rest1",
        INFY,
        "D",
        "INFY",
    )
    assert details.exchange == "NSE"
    assert details.placed_by == TRADER

    change = upstox_client.ModifyOrderRequest(
        quantity=3,
        validity="DAY",
        price=1510.0,
        order_id=order_id,
        order_type="LIMIT",
        disclosed_quantity=0,
        trigger_price=0.0,
    )
    assert orders.modify_order(change, V).data.order_id == order_id
    details = orders.get_order_status(order_id=order_id).data
    assert (details.status, details.price, details.quantity) == ("open", 1510.0, 3)

    assert orders.cancel_order(order_id, V).data.order_id == order_id
    details = orders.get_order_status(order_id=order_id).data
    assert (details.status, details.pending_quantity, details.filled_quantity) == ("cancelled", 0, 0)

    history = orders.get_order_details(V, order_id=order_id).data
    assert [h.status for h in history] == [
        "put order req received",
        "validation pending",
        "open pending",
        "open",
        "modify validation pending",
        "modify pending",
        "open",
        "cancel pending",
        "cancelled",
    ]
    assert history[0].exchange_order_id is None
    assert history[-1].exchange_order_id == details.exchange_order_id
    assert (history[3].price, history[6].price, history[6].quantity) == (1500.0, 1510.0, 3)


def test_market_order_fills_with_transient_then_final_history(server: SimServer, market_fill: str) -> None:
    orders = upstox_client.OrderApi(login(server, TRADER))
    details = orders.get_order_status(order_id=market_fill).data
    assert (details.status, details.filled_quantity, details.average_price) == ("complete", 5, 1562.5)
    assert details.order_type == "MARKET"
    statuses = [h.status for h in orders.get_order_details(V, order_id=market_fill).data]
    assert statuses[:3] == ["put order req received", "validation pending", "open pending"]
    assert statuses[-1] == "complete"
    by_tag = [h.status for h in orders.get_order_details(V, tag="mkt1").data]
    assert by_tag == statuses


def test_order_book_lists_the_days_orders(server: SimServer, market_fill: str) -> None:
    book = upstox_client.OrderApi(login(server, TRADER)).get_order_book(V).data
    (filled,) = [o for o in book if o.order_id == market_fill]
    assert (filled.status, filled.tag, filled.transaction_type, filled.quantity) == ("complete", "mkt1", "BUY", 5)
    assert filled.order_timestamp.startswith("2026-11-")
    assert datetime.strptime(filled.order_timestamp, "%Y-%m-%d %H:%M:%S")


def test_trades_for_the_day_and_by_order(server: SimServer, market_fill: str) -> None:
    orders = upstox_client.OrderApi(login(server, TRADER))
    (trade,) = [t for t in orders.get_trade_history(V).data if t.order_id == market_fill]
    assert (trade.quantity, trade.average_price, trade.transaction_type, trade.product) == (5, 1562.5, "BUY", "I")
    assert (trade.instrument_token, trade.trading_symbol) == (INFY, "INFY")
    assert trade.trade_id
    assert [t.trade_id for t in orders.get_trades_by_order(market_fill, V).data] == [trade.trade_id]


def test_positions_show_the_intraday_fill(server: SimServer, market_fill: str) -> None:
    positions = upstox_client.PortfolioApi(login(server, TRADER)).get_positions(V).data
    (infy,) = [p for p in positions if p.instrument_token == INFY and p.product == "I"]
    assert (infy.quantity, infy.average_price, infy.last_price) == (5, 1562.5, 1562.4)
    assert (infy.day_buy_quantity, infy.day_buy_value, infy.day_sell_quantity) == (5, 7812.5, 0)
    assert (infy.unrealised, infy.realised, infy.pnl) == (-0.5, 0.0, -0.5)
    assert (infy.exchange, infy.trading_symbol) == ("NSE", "INFY")


def test_holdings_show_the_seeded_delivery_shares(server: SimServer) -> None:
    holdings = upstox_client.PortfolioApi(login(server, TRADER)).get_holdings(V).data
    (tcs,) = [h for h in holdings if h.instrument_token == TCS]
    assert (tcs.isin, tcs.quantity, tcs.average_price, tcs.last_price) == ("INE467B01029", 10, 3000.0, 3148.7)
    assert (tcs.pnl, tcs.product, tcs.exchange, tcs.trading_symbol) == (1487.0, "D", "NSE", "TCS")


def test_funds_and_margin_follow_the_book(server: SimServer) -> None:
    client = login(server, FUNDED)
    users = upstox_client.UserApi(client)
    fresh = users.get_user_fund_margin(V, segment="SEC").data
    assert set(fresh) == {"equity"}
    assert (fresh["equity"].available_margin, fresh["equity"].used_margin) == (1_000_000.0, 0.0)
    upstox_client.OrderApi(client).place_order(limit_buy(INFY, 10, 1500.0, "fund1", product="D"), V)
    equity = users.get_user_fund_margin(V, segment="SEC").data["equity"]
    assert (equity.available_margin, equity.used_margin) == (985_000.0, 15_000.0)
    both = users.get_user_fund_margin(V).data
    assert set(both) == {"equity", "commodity"}
    assert both["commodity"].available_margin == 0.0


def test_ltp_v2_and_v3(server: SimServer) -> None:
    client = login(server, TRADER)
    symbols = f"{INFY},{NIFTY_FUT}"
    quotes = upstox_client.MarketQuoteApi(client).ltp(symbols, V).data
    assert set(quotes) == {"NSE_EQ:INFY", "NSE_FO:NIFTY26NOVFUT"}
    assert (quotes["NSE_EQ:INFY"].last_price, quotes["NSE_EQ:INFY"].instrument_token) == (1562.4, INFY)
    assert (quotes["NSE_FO:NIFTY26NOVFUT"].last_price, quotes["NSE_FO:NIFTY26NOVFUT"].instrument_token) == (
        26412.3,
        NIFTY_FUT,
    )
    v3 = upstox_client.MarketQuoteV3Api(client).get_ltp(instrument_key=INFY).data
    assert (v3["NSE_EQ:INFY"].last_price, v3["NSE_EQ:INFY"].cp) == (1562.4, 1562.4)


def test_v3_place_slices_above_the_freeze_quantity(server: SimServer) -> None:
    client = login(server, TRADER)
    request = upstox_client.PlaceOrderV3Request(
        quantity=65 * 30,  # 1950: one slice of 27 lots (1755, the most under 1800) and one of 3 lots
        product="D",
        validity="DAY",
        price=26000.0,
        tag="slice1",
        instrument_token=NIFTY_FUT,
        order_type="LIMIT",
        transaction_type="BUY",
        disclosed_quantity=0,
        trigger_price=0.0,
        is_amo=False,
        slice=True,
        market_protection=0.0,
    )
    v3 = upstox_client.OrderApiV3(client)
    placed = v3.place_order(request)
    assert len(placed.data.order_ids) == 2
    assert placed.metadata.latency >= 0
    slices = {o.order_id: o for o in book_by_tag(client, "slice1")}
    assert set(slices) == set(placed.data.order_ids)
    assert sorted(o.quantity for o in slices.values()) == [195, 1755]
    assert {(o.status, o.product, o.exchange, o.instrument_token) for o in slices.values()} == {
        ("open", "D", "NFO", NIFTY_FUT)
    }

    first, second = placed.data.order_ids
    change = upstox_client.ModifyOrderRequest(
        validity="DAY", price=26100.0, order_id=first, order_type="LIMIT", disclosed_quantity=0, trigger_price=0.0
    )
    assert v3.modify_order(change).data.order_id == first
    for order_id in (first, second):
        assert v3.cancel_order(order_id).data.order_id == order_id
    after = {o.order_id: o for o in book_by_tag(client, "slice1")}
    assert after[first].price == 26100.0
    assert {o.status for o in after.values()} == {"cancelled"}


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code", "path", "message"),
    [
        (limit_buy(INFY, 1, 1500.05, "offtick"), "UDAPI10211", "price", "off tick"),
        (limit_buy(INFY, 1, 1800.0, "band"), "UDAPI10212", "price", "price band"),
        (limit_buy(RELIANCE, 1000, 1500.0, "broke", product="D"), "UDAPI10218", None, "insufficient funds"),
        (
            upstox_client.PlaceOrderRequest(
                quantity=1,
                product="D",
                validity="DAY",
                price=3148.7,
                tag="unheld",
                instrument_token=TCS,
                order_type="LIMIT",
                transaction_type="SELL",
                disclosed_quantity=0,
                trigger_price=0.0,
                is_amo=False,
            ),
            "UDAPI10219",
            "quantity",
            "insufficient holdings",
        ),
    ],
    ids=["off-tick", "price-band", "insufficient-funds", "delivery-sell-not-held"],
)
def test_refused_orders_answer_400_and_are_recorded_as_rejected(
    server: SimServer, request_: upstox_client.PlaceOrderRequest, code: str, path: str | None, message: str
) -> None:
    client = login(server, REFUSED)
    with pytest.raises(ApiException) as refused:
        upstox_client.OrderApi(client).place_order(request_, V)
    assert refused.value.status == 400
    error = error_of(refused.value)
    assert (error["error_code"], error["property_path"]) == (code, path)
    assert message in error["message"]
    (recorded,) = book_by_tag(client, request_.tag)
    assert recorded.status == "rejected"
    assert message in recorded.status_message


def test_gateway_refuses_malformed_fields_without_recording(server: SimServer) -> None:
    client = login(server, REFUSED)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {client.configuration.access_token}"}
    ) as http:
        answer = http.post(
            "/v2/order/place", json={**limit_buy(INFY, 1, 1500.0, "badtype").to_dict(), "order_type": "STOP"}
        )
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert (error["errorCode"], error["propertyPath"], error["invalidValue"]) == ("UDAPI1056", "order_type", "STOP")
    assert book_by_tag(client, "badtype") == []


def test_eleventh_order_within_a_second_is_rate_limited(server: SimServer) -> None:
    orders = upstox_client.OrderApi(login(server, PACED))
    for n in range(10):
        orders.place_order(limit_buy(INFY, 1, 1500.0, f"pace{n}"), V)
    with pytest.raises(ApiException) as limited:
        orders.place_order(limit_buy(INFY, 1, 1500.0, "pace10"), V)
    assert limited.value.status == 429
    assert error_of(limited.value)["errorCode"] == "UDAPI10005"


def test_burst_429_fault(server: SimServer) -> None:
    orders = upstox_client.OrderApi(login(server, FAULTY))
    set_fault(server, endpoint="place", burst_429=1)
    try:
        with pytest.raises(ApiException) as limited:
            orders.place_order(limit_buy(INFY, 1, 1500.0, "burst1"), V)
    finally:
        clear_faults(server)
    assert limited.value.status == 429
    assert error_of(limited.value)["error_code"] == "UDAPI10005"


def test_revoked_token_answers_401(server: SimServer) -> None:
    client = login(server, FAULTY)
    httpx.post(f"{server.url}/__sim__/revoke", json={"user_id": FAULTY}).raise_for_status()
    with pytest.raises(ApiException) as revoked:
        upstox_client.OrderApi(client).get_order_book(V)
    assert revoked.value.status == 401
    assert error_of(revoked.value)["errorCode"] == "UDAPI100050"


# ---- faults ---------------------------------------------------------------------------------------


def test_dropped_response_leaves_the_order_placed(server: SimServer) -> None:
    client = login(server, FAULTY)
    set_fault(server, endpoint="place", drop_rate=1)
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            upstox_client.OrderApi(client).place_order(limit_buy(INFY, 1, 1500.0, "dropped1"), V)
    finally:
        clear_faults(server)
    (placed,) = book_by_tag(client, "dropped1")
    assert placed.status == "open"


def test_error_fault_answers_503_and_places_nothing(server: SimServer) -> None:
    client = login(server, FAULTY)
    set_fault(server, endpoint="place", error_rate=1)
    try:
        with pytest.raises(ApiException) as failed:
            upstox_client.OrderApi(client).place_order(limit_buy(INFY, 1, 1500.0, "err1"), V)
    finally:
        clear_faults(server)
    assert failed.value.status == 503
    assert error_of(failed.value)["errorCode"] == "UDAPI100500"
    assert book_by_tag(client, "err1") == []


# ---- fidelity -------------------------------------------------------------------------------------


def wire_keys(model: type) -> set[str]:
    return set(model.attribute_map.values())


def test_every_emitted_key_is_an_sdk_attribute_and_every_attribute_is_emitted(
    server: SimServer, market_fill: str
) -> None:
    """Rows must match the SDK's models exactly, so nothing the SDK reads is missing and nothing is invented.

    The one exception: error problems also carry snake_case twins of the model's camelCase keys,
    because Upstox sends both and other clients read the snake_case ones.
    """
    code = authorization_code(server, TRADER)
    form = {
        "code": code,
        "client_id": APP.api_key,
        "client_secret": APP.api_secret,
        "redirect_uri": APP.redirect_url,
        "grant_type": "authorization_code",
    }
    token_json = httpx.post(f"{server.url}/v2/login/authorization/token", data=form).json()
    assert set(token_json) == wire_keys(upstox_client.TokenResponse)

    headers = {"Authorization": f"Bearer {token_json['access_token']}", "Accept": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers) as http:

        def data(path: str, **params: str) -> Any:
            answer = http.get(path, params=params)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            return answer.json()["data"]

        def rows(path: str, **params: str) -> list[dict[str, Any]]:
            found = data(path, **params)
            assert found, path
            return found

        assert set(data("/v2/user/profile")) == wire_keys(upstox_client.ProfileData)
        checks = [
            (rows("/v2/order/retrieve-all"), upstox_client.OrderBookData),
            ([data("/v2/order/details", order_id=market_fill)], upstox_client.OrderBookData),
            (rows("/v2/order/history", order_id=market_fill), upstox_client.OrderData),
            (rows("/v2/order/trades/get-trades-for-day"), upstox_client.TradeData),
            (rows("/v2/order/trades", order_id=market_fill), upstox_client.TradeData),
            (rows("/v2/portfolio/short-term-positions"), upstox_client.PositionData),
            (rows("/v2/portfolio/long-term-holdings"), upstox_client.HoldingsData),
            (list(data("/v2/user/get-funds-and-margin").values()), upstox_client.UserFundMarginData),
            (list(data("/v2/market-quote/ltp", symbol=INFY).values()), upstox_client.MarketQuoteSymbolLtp),
            (list(data("/v3/market-quote/ltp", instrument_key=INFY).values()), upstox_client.MarketQuoteSymbolLtpV3),
        ]
        for found, model in checks:
            for row in found:
                assert set(row) == wire_keys(model), model.__name__

        order = {**limit_buy(INFY, 1, 1500.0, "fidelity").to_dict(), "slice": False}
        placed = http.post("/v3/order/place", json=order).json()
        assert set(placed) == wire_keys(upstox_client.PlaceOrderV3Response)
        assert set(placed["data"]) == wire_keys(upstox_client.MultiOrderV3Data)
        refused = http.get("/v2/order/details", params={"order_id": "nope"}).json()
        (problem,) = refused["errors"]
        assert wire_keys(upstox_client.Problem) < set(problem)
        assert set(problem) - wire_keys(upstox_client.Problem) == {"error_code", "property_path", "invalid_value"}


# ---- instruments and expiry -----------------------------------------------------------------------


def test_instrument_master_is_upstox_json_gz_without_a_session(server: SimServer) -> None:
    answer = httpx.get(f"{server.url}/market-quote/instruments/exchange/complete.json.gz")
    assert answer.status_code == 200
    rows = {r["instrument_key"]: r for r in json.loads(gzip.decompress(answer.content))}
    infy, fut = rows[INFY], rows[NIFTY_FUT]
    assert (infy["segment"], infy["trading_symbol"], infy["isin"], infy["tick_size"]) == (
        "NSE_EQ",
        "INFY",
        "INE009A01021",
        10.0,
    )
    assert rows["BSE_EQ|INE009A01021"]["exchange_token"] == "500209"
    assert (fut["segment"], fut["exchange_token"], fut["lot_size"], fut["freeze_quantity"]) == (
        "NSE_FO",
        "52168",
        65,
        1800.0,
    )
    expiry = datetime.fromtimestamp(fut["expiry"] / 1000, IST)
    assert (expiry.date().isoformat(), fut["underlying_symbol"], fut["weekly"]) == ("2026-11-24", "NIFTY", False)


def test_token_expires_at_0330_ist(server: SimServer) -> None:
    """Runs last: it moves the simulator's clock to the next morning for good."""
    client = login(server, FUNDED)
    tomorrow = server.venue.clock().astimezone(IST).date() + timedelta(days=1)
    morning = datetime.combine(tomorrow, time(3, 31), IST)
    httpx.post(f"{server.url}/__sim__/clock", json={"at": morning.isoformat()}).raise_for_status()
    with pytest.raises(ApiException) as expired:
        upstox_client.PortfolioApi(client).get_positions(V)
    assert expired.value.status == 401
    assert error_of(expired.value)["errorCode"] == "UDAPI100050"
    assert upstox_client.PortfolioApi(login(server, FUNDED)).get_positions(V).status == "success"
