"""kill -9 the daemon again and again while orders flow over three simulated accounts, then audit it.

After the run every order the daemon acknowledged is at its broker exactly once (by tag), every broker
order is known to the daemon (orders placed outside it are adopted as EXTERNAL), the ledger equals a FIFO
recomputed here from the simulators' own trade books, and a stream client that resumed after each
restart saw every event once. The short runs are part of `make test`; the long ones (500 orders, 10
kills) run in `make soak`. With `faults`, the brokers also answer 10% of requests with 5xx, and order
placement times out (5%) or drops the connection after accepting (5%).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from clients.python import Client
from engine.brokers.base import BrokerOrder, BrokerTrade, PlaceRequest
from engine.domain import InstrumentId, OrderType, Product, Side
from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from engine.sim.venue import SimVenue
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import APP, FLAT, LAKH, pin_price, serving, sim_account, sim_user
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2

SYMBOLS = ("INFY", "TCS", "SBIN", "ITC")
BASE = 1000
ACCOUNTS = {"k1": ("kite", "KS0001"), "k2": ("kite", "KS0002"), "u1": ("upstox", "US0001")}
EXTRA = "sync_interval_seconds = 0.3\nin_flight_grace_seconds = 5\norders_per_second = 10\n"
RETRY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
FAULTS = [
    {"endpoint": "*", "error_rate": 0.1},
    {"endpoint": "place", "error_rate": 0.1, "timeout_rate": 0.05, "hang_seconds": 12, "drop_rate": 0.05},
]


@dataclass(frozen=True)
class Plan:
    orders: int
    kills: int  # of the daemon, by SIGKILL
    faults: bool
    actor_kills: int = 0  # of one account actor's process, by SIGKILL; Ray restarts it
    rate: float = 12.0  # orders a second the clients try to place


@dataclass
class Books:
    """What one simulator user holds: its orders and its trades, in the order they happened."""

    orders: list[BrokerOrder]
    trades: list[BrokerTrade]


@dataclass
class Driver:
    """Client threads placing orders at `plan.rate`, retrying each with the same client_order_id while the
    daemon is down; `acked` maps client_order_id to the order_id the daemon answered with."""

    client: Client
    plan: Plan
    acked: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    retries: int = 0

    def request(self, n: int, rng: random.Random) -> orders_pb2.PlaceOrderRequest:
        account = list(ACCOUNTS)[n % len(ACCOUNTS)]
        common = {
            "client_order_id": f"soak-{n}",
            "account": account,
            "instrument": f"NSE:{rng.choice(SYMBOLS)}",
            "product": common_pb2.PRODUCT_MIS,
        }
        if rng.random() < 0.1:  # rests below the market through every restart
            return orders_pb2.PlaceOrderRequest(
                **common, side=common_pb2.SIDE_BUY, quantity=1, order_type=common_pb2.ORDER_TYPE_LIMIT, price="920"
            )
        side = rng.choice([common_pb2.SIDE_BUY, common_pb2.SIDE_SELL])
        return orders_pb2.PlaceOrderRequest(
            **common, side=side, quantity=rng.randint(1, 20), order_type=common_pb2.ORDER_TYPE_MARKET
        )

    def place(self, request: orders_pb2.PlaceOrderRequest) -> None:
        deadline = time.monotonic() + 300
        while True:
            try:
                reply = self.client.orders.PlaceOrder(request, timeout=30)
            except grpc.RpcError as exc:
                if exc.code() in RETRY and time.monotonic() < deadline:
                    self.retries += 1
                    time.sleep(0.3)
                    continue
                self.refused[request.client_order_id] = f"{exc.code().name}: {exc.details()}"
                return
            self.acked[request.client_order_id] = reply.order.order_id
            return

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        requests = [self.request(n, rng) for n in range(self.plan.orders)]
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            for n, request in enumerate(requests):
                time.sleep(max(0.0, started + n / self.plan.rate - time.monotonic()))
                pool.submit(self.place, request)


class Follower:
    """A stream client that resumes from the last sequence it saw whenever the stream breaks."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.seen: list[int] = []
        self.resumes = 0
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._thread = threading.Thread(target=self._follow, name="follower", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            after = self.seen[-1] if self.seen else 0
            try:
                self._call = self._client.orders.StreamOrderEvents(
                    orders_pb2.StreamOrderEventsRequest(after_sequence=after)
                )
                for event in self._call:
                    self.seen.append(event.sequence)
            except grpc.RpcError:
                self.resumes += 1
                time.sleep(0.3)

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=10)


def _books(server: SimServer, user: str) -> Books:
    def read(venue: SimVenue) -> Books:
        exchange = venue.users[user].exchange
        return Books(exchange.orders(), exchange.trades())

    return server.call(read)


def _place_outside(server: SimServer, user: str, symbol: str, side: Side, quantity: int) -> str:
    """An order the daemon did not place, as from the broker's own app: no tag."""

    def place(venue: SimVenue) -> str:
        with venue.trading(venue.users[user]) as exchange:
            request = PlaceRequest(
                tag="", instrument=InstrumentId.parse(f"NSE:{symbol}"), side=side, quantity=quantity,
                product=Product.MIS, order_type=OrderType.MARKET,
            )  # fmt: skip
            return exchange.place(request)

    return server.call(place)


def _fifo(trades: list[BrokerTrade]) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    """(instrument, product) -> (quantity, open cost, realised PnL), matching oldest lots first."""
    lots: dict[tuple[str, str], deque[list]] = defaultdict(deque)
    realised: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for trade in trades:
        key = (str(trade.instrument), trade.product.value)
        signed = trade.quantity if trade.side is Side.BUY else -trade.quantity
        book = lots[key]
        while signed and book and (book[0][0] > 0) != (signed > 0):
            take = min(abs(signed), abs(book[0][0]))
            direction = 1 if book[0][0] > 0 else -1
            realised[key] += (trade.price - book[0][1]) * take * direction
            book[0][0] -= take * direction
            signed += take * direction
            if book[0][0] == 0:
                book.popleft()
        if signed:
            book.append([signed, trade.price])
    return {
        key: (sum(q for q, _ in book), sum((q * p for q, p in book), Decimal(0)), realised[key])
        for key, book in lots.items()
    }


def _all_orders(client: Client) -> list[orders_pb2.Order]:
    return list(client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=5000), timeout=30).orders)


def _settled(client: Client, books: dict[str, Books]) -> bool:
    """The daemon has reconciled everything: nothing in flight, and its view of every broker order matches."""
    orders = _all_orders(client)
    if any(not o.broker_order_id and o.status == orders_pb2.ORDER_STATUS_SUBMITTED for o in orders):
        return False
    mine = {(o.account, o.broker_order_id): o.filled_quantity for o in orders if o.broker_order_id}
    at_brokers = {(a, b.broker_order_id): b.filled_quantity for a, held in books.items() for b in held.orders}
    return mine == at_brokers


def _audit(client: Client, driver: Driver, books: dict[str, Books], outside: dict[str, list[str]]) -> None:
    orders = _all_orders(client)
    by_client = defaultdict(list)
    for order in orders:
        by_client[order.client_order_id].append(order)
    tags: dict[str, list[BrokerOrder]] = defaultdict(list)
    for held in books.values():
        for b in held.orders:
            tags[b.tag].append(b)

    assert not driver.refused, driver.refused
    assert len(driver.acked) == driver.plan.orders
    for client_id, order_id in driver.acked.items():
        assert [o.order_id for o in by_client[client_id]] == [order_id], f"{client_id} is not one order"
    for order in orders:
        if order.external:
            continue
        sent = [b.broker_order_id for b in tags.get(order.order_id, [])]
        if order.broker_order_id:
            assert sent == [order.broker_order_id], f"{order.order_id} is at its broker as {sent}"
        else:
            assert order.status == orders_pb2.ORDER_STATUS_REJECTED and not sent, (order, sent)
    known = {(o.account, o.broker_order_id): o for o in orders if o.broker_order_id}
    for account, held in books.items():
        for b in held.orders:
            assert (account, b.broker_order_id) in known, f"{account}: broker order {b.broker_order_id} unknown"
        for broker_id in outside[account]:
            assert known[account, broker_id].external, f"{broker_id} was not adopted as EXTERNAL"

    portfolio = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(), timeout=30)
    ledger = {
        (a.account, p.instrument, common_pb2.Product.Name(p.product).removeprefix("PRODUCT_")): p
        for a in portfolio.accounts
        for p in a.positions
    }
    expected = {
        (account, *key): value for account, held in books.items() for key, value in _fifo(held.trades).items()
    }
    assert set(ledger) == set(expected)
    for key, (quantity, cost, realised) in expected.items():
        position = ledger[key]
        assert position.quantity == quantity, key
        assert Decimal(position.realised_pnl) == realised.quantize(Decimal("0.01")), key
        if quantity:
            assert abs(Decimal(position.average_price) - cost / quantity) < Decimal("0.0001"), key


def _soak(plan: Plan, tmp_path: Path, name: str, seed: int) -> None:
    sims = {
        "kite": SimSettings(
            broker="kite", market=FLAT, apps=[APP], users=[sim_user("KS0001", 50 * LAKH), sim_user("KS0002", 50 * LAKH)]
        ),
        "upstox": SimSettings(broker="upstox", market=FLAT, apps=[APP], users=[sim_user("US0001", 50 * LAKH)]),
    }
    with serving(sims, [f"NSE:{symbol}" for symbol in SYMBOLS], BASE) as servers:
        _crash_and_audit(plan, servers, tmp_path, name, seed)


def _crash_and_audit(plan: Plan, servers: dict[str, SimServer], tmp_path: Path, name: str, seed: int) -> None:
    rng = random.Random(seed)
    daemon = Daemon(tmp_path / "data", ROOT / "test-artifacts" / f"daemon-{name}.log")
    daemon.config.write_text(
        daemon.tables(num_cpus=1)
        + "".join(
            sim_account(account, broker, servers[broker].url, user, extra=EXTRA)
            for account, (broker, user) in ACCOUNTS.items()
        )
    )
    moving = threading.Event()

    def move_prices() -> None:
        while not moving.wait(0.7):
            for server in servers.values():
                pin_price(server.url, f"NSE:{rng.choice(SYMBOLS)}", rng.randint(BASE - 20, BASE + 60))

    daemon.start()
    try:
        if plan.faults:
            for server in servers.values():
                for rule in FAULTS:
                    httpx.post(f"{server.url}/__sim__/faults", json=rule).raise_for_status()
        outside = {a: [] for a in ACCOUNTS}
        with daemon.client() as client:
            driver = Driver(client, plan)
            follower = Follower(client)
            prices = threading.Thread(target=move_prices, daemon=True)
            prices.start()
            placing = threading.Thread(target=driver.run, args=(seed,), daemon=True)
            placing.start()
            crashes = ["daemon"] * plan.kills + ["actor"] * plan.actor_kills
            rng.shuffle(crashes)
            for n, crash in enumerate(crashes):
                time.sleep(rng.uniform(0.5, 4.0))
                if crash == "actor":
                    _kill_an_account_actor(daemon, rng)
                    continue
                assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
                account = list(ACCOUNTS)[n % len(ACCOUNTS)]
                broker, user = ACCOUNTS[account]
                outside[account].append(_place_outside(servers[broker], user, rng.choice(SYMBOLS), Side.SELL, 3))
                daemon.start()
            placing.join(timeout=600)
            assert not placing.is_alive(), "the clients did not finish"
            moving.set()
            prices.join()
            for server in servers.values():
                httpx.delete(f"{server.url}/__sim__/faults").raise_for_status()

            def books() -> dict[str, Books]:
                return {a: _books(servers[broker], user) for a, (broker, user) in ACCOUNTS.items()}

            wait_for(lambda: _settled(client, books()), timeout=120, interval=1)
            final = books()
            _audit(client, driver, final, outside)
            head = wait_for(lambda: _head(client), timeout=30)
            wait_for(lambda: follower.seen and follower.seen[-1] >= head, timeout=30)
            follower.stop()
            everything = _sequences(client)
            assert follower.seen == everything[: len(follower.seen)], "the resumed stream skipped or repeated"
            assert follower.resumes >= plan.kills
            orders = _all_orders(client)
            never_sent = sum(1 for o in orders if o.status_message.startswith("not sent"))
            print(  # the figures `make soak` reports (pytest -s shows them)
                f"\n{name}: {len(driver.acked)} orders acknowledged, {driver.retries} retries across {plan.kills}"
                f" daemon kills and {plan.actor_kills} actor kills,"
                f" {sum(len(b.orders) for b in final.values())} broker orders,"
                f" {sum(len(b.trades) for b in final.values())} trades, {never_sent} rejected as not sent,"
                f" {sum(o.external for o in orders)} adopted as EXTERNAL, {len(everything)} events streamed"
                f" over {follower.resumes} resumes"
            )
    finally:
        moving.set()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


def _kill_an_account_actor(daemon: Daemon, rng: random.Random) -> None:
    """SIGKILL one AccountActor worker process (Ray names its processes after the actor class)."""
    assert daemon.proc is not None
    workers = [
        p for p in psutil.Process(daemon.proc.pid).children(recursive=True)
        if any("AccountActor" in part for part in p.cmdline())
    ]  # fmt: skip
    assert workers, "no account actor process found"
    rng.choice(workers).kill()


def _sequences(client: Client) -> list[int]:
    request = orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True)
    return [e.sequence for e in client.orders.StreamOrderEvents(request, timeout=60)]


def _head(client: Client) -> int:
    sequences = _sequences(client)
    return sequences[-1] if sequences else 0


def test_kill_9_during_orders_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    _soak(Plan(orders=90, kills=2, faults=False, actor_kills=2), tmp_path, "crash-short", seed=1)


def test_kill_9_with_broker_faults_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    _soak(Plan(orders=90, kills=2, faults=True), tmp_path, "crash-faults-short", seed=2)


@pytest.mark.soak
def test_soak_500_orders_10_kills(tmp_path: Path) -> None:
    _soak(Plan(orders=500, kills=10, faults=False, actor_kills=5), tmp_path, "crash-soak", seed=3)


@pytest.mark.soak
def test_soak_500_orders_10_kills_with_broker_faults(tmp_path: Path) -> None:
    _soak(Plan(orders=500, kills=10, faults=True, actor_kills=5), tmp_path, "crash-faults-soak", seed=4)


def test_an_account_that_cannot_reconcile_refuses_orders_and_the_others_carry_on(tmp_path: Path) -> None:
    """Its broker answers everything but the order book: it stays RECONCILING, and UNAVAILABLE says why."""
    sims = {
        "kite": SimSettings(broker="kite", market=FLAT, apps=[APP], users=[sim_user("KR0001", 50 * LAKH)]),
        "upstox": SimSettings(broker="upstox", market=FLAT, apps=[APP], users=[sim_user("UR0001", 50 * LAKH)]),
    }
    with serving(sims, price=BASE) as servers:
        _refuses_until_reconciled(servers["kite"], servers["upstox"], tmp_path)


def _refuses_until_reconciled(kite: SimServer, upstox: SimServer, tmp_path: Path) -> None:
    httpx.post(f"{kite.url}/__sim__/faults", json={"endpoint": "orders", "error_rate": 1}).raise_for_status()
    daemon = Daemon(tmp_path / "data", ROOT / "test-artifacts" / "daemon-reconciling.log")
    daemon.config.write_text(
        daemon.tables()
        + "[routing]\ncircuit_reset_seconds = 0.5\n"
        + sim_account("r1", "kite", kite.url, "KR0001", extra=EXTRA)
        + sim_account("r2", "upstox", upstox.url, "UR0001", extra=EXTRA)
    )
    daemon.start()
    try:
        with daemon.client() as client:
            stuck = client.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r1"), timeout=10)
            assert stuck.status == accounts_pb2.ACCOUNT_STATUS_RECONCILING and "503" in stuck.health.last_error
            request = _buy_one("rec-1", "r1")
            with pytest.raises(grpc.RpcError) as refused:
                client.orders.PlaceOrder(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "r1 is reconciling with its broker" in refused.value.details(), refused.value.details()
            other = client.orders.PlaceOrder(_buy_one("rec-2", "r2"), timeout=10)
            assert other.order.status != orders_pb2.ORDER_STATUS_REJECTED
            httpx.delete(f"{kite.url}/__sim__/faults").raise_for_status()
            wait_for(
                lambda: client.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r1"), timeout=10).status
                == accounts_pb2.ACCOUNT_STATUS_ACTIVE,
                timeout=30,
            )
            placed = wait_for(lambda: _placed_once_active(client, request), timeout=10)
            assert placed.order.account == "r1" and not placed.duplicate
    finally:
        daemon.stop()


def _placed_once_active(client: Client, request: orders_pb2.PlaceOrderRequest) -> orders_pb2.PlaceOrderResponse | None:
    """The order placed, once the gateway's copy of the account's state has caught up with its recovery."""
    try:
        return client.orders.PlaceOrder(request, timeout=10)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


def _buy_one(client_order_id: str, account: str) -> orders_pb2.PlaceOrderRequest:
    return orders_pb2.PlaceOrderRequest(
        client_order_id=client_order_id, account=account, instrument="NSE:INFY", side=common_pb2.SIDE_BUY,
        quantity=1, product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
    )  # fmt: skip
