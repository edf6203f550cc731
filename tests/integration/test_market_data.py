"""Market data with the daemon and a simulated Kite whose prices the tests pin: quotes, streams, marks, limits.

The accounts sync only every 30 s, so a portfolio that follows a pinned price within seconds is marked by
the market-data actor's quotes, not by the account sync. The last test drives the poller and the real Kite
adapter against a simulator listing 600 instruments (the daemon's own instrument master has 35).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import grpc
import httpx
import pytest

from engine.brokers.kite import KiteAdapter
from engine.instrument_master import InstrumentMaster
from engine.marketdata import MarketDataPoller, QuoteSource
from engine.sim.autologin import form_login
from engine.sim.config import SimSettings, SimUserSettings
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import APP, FLAT, pin_price, sim_account
from trademaster.v1 import accounts_pb2, common_pb2, marketdata_pb2, orders_pb2, portfolio_pb2

USERS = ("KQ0001", "KQ0002")
D = Decimal


def _pin(sim: SimServer, instrument: str, price: str) -> None:
    pin_price(sim.url, instrument, price)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    users = [SimUserSettings(user_id=u, opening_cash=D(5_000_000)) for u in USERS]
    server = SimServer(SimSettings(broker="kite", market=FLAT, apps=[APP], users=users)).start()
    _pin(server, "NSE:INFY", "1000")
    _pin(server, "NSE:TCS", "3000")
    yield server
    server.stop()


def _account(account_id: str, url: str, user: str) -> str:
    return sim_account(account_id, "kite", url, user, extra="sync_interval_seconds = 30")


@pytest.fixture(scope="module")
def daemon(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("quotes") / "data", ROOT / "test-artifacts" / "daemon-quotes.log")
    d.config.write_text(
        f"""
{d.tables()}
[market_data]
poll_interval_seconds = 0.3
"""
        + _account("kq1", sim.url, USERS[0])
        + _account("kq2", sim.url, USERS[1])
    )
    d.start()
    with d.client() as client:
        wait_for(
            lambda: all(
                a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE
                for a in client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
            ),
            timeout=60,
        )
    yield d
    d.stop()


def test_get_quotes_returns_the_pinned_prices_in_request_order(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = client.market_data.GetQuotes(
            marketdata_pb2.GetQuotesRequest(instruments=["NSE:TCS", "NSE:INFY", "NSE:TCS"]), timeout=30
        )
    assert [(q.instrument, D(q.last_price)) for q in reply.quotes] == [("NSE:TCS", 3000), ("NSE:INFY", 1000)]
    assert all(q.broker == "zerodha-sim" and q.at.seconds > 0 and q.bid and q.ask for q in reply.quotes)


@pytest.mark.parametrize(
    ("instruments", "expected"),
    [
        (["NSE:INFY", "NSE:NOPE"], "unknown instrument NSE:NOPE"),
        (["INFY"], "instruments"),
        ([], "at least one"),
        (["NSE:INFY"] * 501, "at most 500"),
    ],
)
def test_bad_instruments_are_refused_naming_the_field(daemon: Daemon, instruments: list[str], expected: str) -> None:
    with daemon.client() as client, pytest.raises(grpc.RpcError) as refused:
        client.market_data.GetQuotes(marketdata_pb2.GetQuotesRequest(instruments=instruments), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instruments" in refused.value.details() and expected in refused.value.details()


def test_stream_delivers_a_changed_pinned_price(daemon: Daemon, sim: SimServer) -> None:
    seen: list[tuple[str, Decimal]] = []
    with daemon.client() as client:
        stream = client.market_data.StreamQuotes(
            marketdata_pb2.StreamQuotesRequest(instruments=["NSE:TCS"], min_interval_ms=100), timeout=60
        )

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the test cancels the stream when it has seen enough
                for quote in stream:
                    seen.append((quote.instrument, D(quote.last_price)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_for(lambda: ("NSE:TCS", D(3000)) in seen, timeout=20)
        _pin(sim, "NSE:TCS", "3012.5")
        wait_for(lambda: ("NSE:TCS", D("3012.5")) in seen, timeout=20)
        stream.cancel()
        reader.join(timeout=10)
    assert not reader.is_alive()
    assert seen.index(("NSE:TCS", D(3000))) < seen.index(("NSE:TCS", D("3012.5")))


def _infy_position(client) -> portfolio_pb2.Position | None:  # type: ignore[no-untyped-def]
    book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=["kq1"]), timeout=10)
    return next((p for p in book.accounts[0].positions if p.instrument == "NSE:INFY" and p.quantity), None)


def test_portfolio_unrealised_pnl_follows_a_pinned_move(daemon: Daemon, sim: SimServer) -> None:
    request = orders_pb2.PlaceOrderRequest(
        client_order_id="quotes-buy",
        account="kq1",
        instrument="NSE:INFY",
        side=common_pb2.SIDE_BUY,
        quantity=10,
        product=common_pb2.PRODUCT_MIS,
        order_type=common_pb2.ORDER_TYPE_MARKET,
    )
    with daemon.client() as client:
        client.orders.PlaceOrder(request, timeout=60)
        position = wait_for(lambda: _infy_position(client), timeout=30)
        average = D(position.average_price)
        _pin(sim, "NSE:INFY", "1100")
        started = time.monotonic()
        moved = wait_for(
            lambda: (p := _infy_position(client)) is not None and D(p.last_price) == 1100 and p, timeout=15
        )
        took = time.monotonic() - started
        _pin(sim, "NSE:INFY", "1000")
    assert D(moved.unrealised_pnl) == (D(1100) - average) * 10
    assert took < 10, f"the mark moved after {took:.1f} s: from the 30 s account sync, not market data"


def test_cli_prints_quotes(daemon: Daemon) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "clients.cli", "quotes", "NSE:INFY", "NSE:TCS", "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True, env=daemon.cli_env(),
    )  # fmt: skip
    assert "NSE:INFY" in shown.stdout and "NSE:TCS" in shown.stdout and "zerodha-sim" in shown.stdout


def test_the_quote_limit_was_never_exceeded(daemon: Daemon, sim: SimServer) -> None:
    assert all(sim.venue.rate_limited[user, "quote"] == 0 for user in USERS), sim.venue.rate_limited


class _RecordingTransport(httpx.AsyncBaseTransport):
    """The adapter's HTTP transport, noting how many instruments each quote request carried."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.quote_requests: list[set[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/quote":
            self.quote_requests.append(set(request.url.params.get_list("i")))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _master(count: int) -> InstrumentMaster:
    header = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
    rows = [f"{900_000 + n},{n},SYN{n:04d},SYNTH {n},{100 + n},,0.0,0.05,1,EQ,NSE,NSE" for n in range(count)]
    return InstrumentMaster.from_kite_csv("\n".join([header + "instrument_type,segment,exchange", *rows]))


async def test_600_instruments_on_one_kite_account_take_two_requests_within_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    master = _master(600)
    with monkeypatch.context() as patch:  # the simulator lists the 600 instruments
        patch.setattr(InstrumentMaster, "default", classmethod(lambda cls: master))
        server = SimServer(
            SimSettings(broker="kite", market=FLAT, apps=[APP], users=[SimUserSettings(user_id="KM0001")])
        )
    server.start()
    admitted: list[float] = []
    count = server.venue.limits.admit

    def admit(user: str, category: str) -> float | None:
        wait = count(user, category)
        if category == "quote" and wait is None:
            admitted.append(time.monotonic())
        return wait

    server.venue.limits.admit = admit  # type: ignore[method-assign]
    transport = _RecordingTransport()
    adapter = KiteAdapter(
        "km1",
        api_key=APP.api_key,
        api_secret=APP.api_secret,
        base_url=server.url,
        login_url=f"{server.url}/connect/login",
        cache_dir=tmp_path,
        transport=transport,
    )
    try:
        await adapter.complete_login(await form_login(adapter.login_url(), "KM0001", "sim"))
        poller = MarketDataPoller(
            [QuoteSource("km1", "kite", "kite:m", "zerodha-sim")],
            lambda account, instruments: adapter.quotes(instruments),
            poll_interval=0.3,
            backoff_seconds=5,
        )
        instruments = [i.id for i in master]
        poller.follow("test", instruments)
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(6)
        task.cancel()
        assert all(poller.store.latest(i) is not None for i in instruments)
    finally:
        await adapter.close()
        server.stop()
    sent = transport.quote_requests
    assert len(sent) >= 4 and all(len(batch) <= 500 for batch in sent), [len(b) for b in sent]
    assert all(len(a | b) == 600 for a, b in itertools.pairwise(sent))  # any two requests in a row cover all 600
    gaps = [b - a for a, b in itertools.pairwise(admitted)]
    assert len(admitted) == len(sent) and min(gaps) >= 1.0, gaps  # Kite: one quote request a second
    assert server.venue.rate_limited["KM0001", "quote"] == 0
