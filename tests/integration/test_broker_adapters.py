"""Our Kite and Upstox adapters against the wire-faithful simulators, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from engine.brokers.base import (
    AuthExpired,
    BrokerAdapter,
    BrokerOrderStatus,
    ModifyRequest,
    PlaceRequest,
    RateLimited,
    Rejected,
)
from engine.brokers.kite import KiteAdapter
from engine.brokers.upstox import UpstoxAdapter
from engine.domain import InstrumentId, OrderType, Product, Side
from engine.instrument_master import InstrumentMaster
from engine.sim.autologin import form_login
from engine.sim.clock import SimClock
from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.server import SimServer

BROKERS = ["kite", "upstox"]
APP = SimAppSettings(api_key="adapter-test", api_secret="adapter-secret")
INFY = InstrumentId.parse("NSE:INFY")
NIFTY = InstrumentId.parse("NFO:NIFTY26NOVFUT")
D = Decimal


def sim_settings(broker: str) -> SimSettings:
    return SimSettings(
        broker=broker,  # type: ignore[arg-type]
        market=MarketSettings(volatility=0, depth_per_second=3, price_band_percent=D(10)),
        apps=[APP],
        users=[
            SimUserSettings(user_id="RICH01", holdings={"NSE:INFY": HoldingSeed(quantity=5, average_price=D(1400))}),
            SimUserSettings(user_id="POOR01", opening_cash=D(1000)),
        ],
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SimServer]]:
    running = {broker: SimServer(sim_settings(broker)).start() for broker in BROKERS}
    yield running
    for server in running.values():
        server.stop()


def make_adapter(broker: str, url: str, cache_dir: Path) -> KiteAdapter | UpstoxAdapter:
    if broker == "kite":
        return KiteAdapter(
            "kite-test",
            api_key=APP.api_key,
            api_secret=APP.api_secret,
            base_url=url,
            login_url=f"{url}/connect/login",
            cache_dir=cache_dir,
        )
    return UpstoxAdapter(
        "upstox-test",
        api_key=APP.api_key,
        api_secret=APP.api_secret,
        redirect_url=APP.redirect_url,
        base_url=url,
        order_url=url,
        login_url=f"{url}/v2/login/authorization/dialog",
        instruments_url=f"{url}/market-quote/instruments/exchange/complete.json.gz",
        cache_dir=cache_dir,
        master=InstrumentMaster.default(),
    )


async def logged_in(broker: str, url: str, user: str, cache_dir: Path) -> KiteAdapter | UpstoxAdapter:
    adapter = make_adapter(broker, url, cache_dir)
    redirect = await form_login(adapter.login_url(), user, "sim")
    session = await adapter.complete_login(redirect)
    assert session.user_id == user
    return adapter


def order(tag: str, side: Side = Side.BUY, quantity: int = 10, **kwargs: object) -> PlaceRequest:
    fields: dict[str, object] = {"product": Product.MIS, "order_type": OrderType.MARKET, "instrument": INFY}
    fields.update(kwargs)
    return PlaceRequest(tag=tag, side=side, quantity=quantity, **fields)  # type: ignore[arg-type]


async def wait_status(adapter: BrokerAdapter, broker_id: str, status: BrokerOrderStatus) -> None:
    for _ in range(100):
        found = {o.broker_order_id: o for o in await adapter.orders()}
        if found[broker_id].status is status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {broker_id} never reached {status}")


@pytest.mark.parametrize("broker", BROKERS)
async def test_full_lifecycle_with_partial_fills(
    broker: str, servers: dict[str, SimServer], tmp_path: Path
) -> None:
    adapter = await logged_in(broker, servers[broker].url, "RICH01", tmp_path)
    funds_before = await adapter.funds()
    resting = await adapter.place(order(f"LIFE{broker.upper()}", order_type=OrderType.LIMIT, price=D("1500.0")))
    book = {o.broker_order_id: o for o in await adapter.orders()}
    assert book[resting].status is BrokerOrderStatus.OPEN and book[resting].tag == f"LIFE{broker.upper()}"
    assert book[resting].price == D("1500.0") and book[resting].filled_quantity == 0

    await adapter.modify(resting, ModifyRequest(price=D("1563.0")))  # ask is 1562.5: 3 units a second fill
    partial = {o.broker_order_id: o for o in await adapter.orders()}[resting]
    assert 0 < partial.filled_quantity < 10 and partial.status is BrokerOrderStatus.OPEN
    await wait_status(adapter, resting, BrokerOrderStatus.COMPLETE)

    trades = [t for t in await adapter.trades() if t.broker_order_id == resting]
    assert sum(t.quantity for t in trades) == 10 and len(trades) >= 4
    assert {t.price for t in trades} == {D("1562.5")}
    positions = {(p.instrument, p.product): p for p in await adapter.positions()}
    assert positions[(INFY, Product.MIS)].quantity == 10
    assert positions[(INFY, Product.MIS)].average_price == D("1562.5")
    holdings = {h.instrument: h for h in await adapter.holdings()}
    assert holdings[INFY].quantity == 5 and holdings[INFY].average_price == D(1400)
    funds_after = await adapter.funds()
    assert funds_after.available < funds_before.available and funds_after.used_margin > 0
    quotes = await adapter.quotes([INFY, NIFTY])
    assert quotes[INFY].last_price == D("1562.4") and NIFTY in quotes

    cancelled = await adapter.place(order(f"CXL{broker.upper()}", order_type=OrderType.LIMIT, price=D("1450.0")))
    await adapter.cancel(cancelled)
    await wait_status(adapter, cancelled, BrokerOrderStatus.CANCELLED)
    await adapter.close()


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize(
    ("request_", "user", "reason"),
    [
        (order("MARGIN", product=Product.CNC), "POOR01", "insufficient funds"),
        (order("TICK", order_type=OrderType.LIMIT, price=D("1500.05")), "RICH01", "off tick"),
        (order("BAND", order_type=OrderType.LIMIT, price=D("1200.0")), "RICH01", "outside the price band"),
        (order("FREEZE", instrument=NIFTY, quantity=65 * 28, product=Product.NRML), "RICH01", "freeze quantity"),
        (order("HOLDING", Side.SELL, quantity=6, product=Product.CNC), "RICH01", "insufficient holdings"),
    ],
)
async def test_rejections_name_the_reason(
    broker: str, request_: PlaceRequest, user: str, reason: str, servers: dict[str, SimServer], tmp_path: Path
) -> None:
    adapter = await logged_in(broker, servers[broker].url, user, tmp_path)
    with pytest.raises(Rejected, match=reason):
        await adapter.place(request_)
    rejected = [o for o in await adapter.orders() if o.tag == request_.tag]
    assert rejected and rejected[-1].status is BrokerOrderStatus.REJECTED
    await adapter.close()


@pytest.mark.parametrize("broker", BROKERS)
async def test_rate_limit_and_revoked_token(broker: str, servers: dict[str, SimServer], tmp_path: Path) -> None:
    url = servers[broker].url
    adapter = await logged_in(broker, url, "RICH01", tmp_path)
    async with httpx.AsyncClient() as admin:
        await admin.post(f"{url}/__sim__/faults", json={"endpoint": "place", "burst_429": 1})
        with pytest.raises(RateLimited):
            await adapter.place(order(f"BURST{broker.upper()}"))
        assert await adapter.place(order(f"AFTER{broker.upper()}"))  # the burst is over
        await admin.delete(f"{url}/__sim__/faults")
        await admin.post(f"{url}/__sim__/revoke", json={"user_id": "RICH01"})
    with pytest.raises(AuthExpired):
        await adapter.orders()
    await adapter.close()


@pytest.mark.parametrize("broker", BROKERS)
async def test_token_expires_at_the_brokers_hour(broker: str, tmp_path: Path) -> None:
    clock = SimClock()
    with SimServer(sim_settings(broker), clock=clock) as server:
        adapter = await logged_in(broker, server.url, "RICH01", tmp_path)
        assert await adapter.orders() == []
        session_end = adapter._session.expires_at  # type: ignore[union-attr]
        clock.set(session_end + timedelta(minutes=1))
        with pytest.raises(AuthExpired):
            await adapter.orders()
        await adapter.close()


@pytest.mark.parametrize("broker", BROKERS)
async def test_unknown_instrument_is_refused_before_sending(
    broker: str, servers: dict[str, SimServer], tmp_path: Path
) -> None:
    adapter = await logged_in(broker, servers[broker].url, "RICH01", tmp_path)
    with pytest.raises(Rejected, match="instrument"):
        await adapter.place(order("NOSUCH", instrument=InstrumentId.parse("NSE:NOSUCHCO")))
    assert not [o for o in await adapter.orders() if o.tag == "NOSUCH"]
    assert list(tmp_path.glob(f"{broker}-*")), "the instrument dump is cached for the day"
    await adapter.close()
