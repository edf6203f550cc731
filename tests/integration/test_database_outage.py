"""A database outage: the daemon refuses what it cannot persist (UNAVAILABLE) and resumes by itself.

The test owns the PostgreSQL server (the daemon is given its DSN), so it can stop and start it under a
running daemon.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.python import Client
from engine.api.server import SERVICE_NAMES
from engine.brokers.paper import read_state
from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, head_sequence, wait_for
from tests.integration.daemon import test_config as config_text
from tests.integration.postgres import Database
from tests.integration.sims import APP, FLAT, pin_price, sim_account, sim_user
from tests.integration.test_orders import order_in, place
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2, security_pb2, strategies_pb2

S = orders_pb2.OrderStatus
T = TypeVar("T")
RECOVERY_SECONDS = 30.0
UNREACHABLE = "the database is unreachable"
# The admin's token stays verified through an outage, so an order gets as far as its account's actor; a token
# first presented during the outage still needs the database.
_SECURITY = "\n[security]\ntoken_cache_seconds = 300\n"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "db")
    yield db
    db.stop()


def _daemon(tmp_path: Path, database: Database, log_name: str, extra: str = "") -> Daemon:
    daemon = Daemon(tmp_path / "data", ROOT / "test-artifacts" / log_name)
    database_table = f'\n[database]\nurl = "{database.dsn}"\n'
    daemon.config.write_text(
        config_text(daemon.grpc_port, daemon.metrics_port, extra=extra + _SECURITY + database_table)
    )
    return daemon


def _refused_for_the_outage(exc: grpc.RpcError) -> bool:
    return exc.code() == grpc.StatusCode.UNAVAILABLE and UNREACHABLE in (exc.details() or "")


def _unavailable(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error: grpc.RpcError = caught.value  # type: ignore[assignment]
    assert _refused_for_the_outage(error), (error.code(), error.details())


def _until_accepted(call: Callable[[], T], timeout: float = RECOVERY_SECONDS) -> tuple[T, int]:
    """Retry `call` while the outage refuses it, as a client waiting one out does; its answer and the refusals."""
    deadline = time.monotonic() + timeout
    refusals = 0
    while True:
        try:
            return call(), refusals
        except grpc.RpcError as exc:
            if not _refused_for_the_outage(exc) or time.monotonic() > deadline:
                raise
        refusals += 1
        time.sleep(0.2)


def _services_serving(client: Client) -> set[int]:
    stub = health_pb2_grpc.HealthStub(client.channel)
    return {stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status for name in SERVICE_NAMES}


def _status(client: Client, account: str) -> int:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return next(a.status for a in accounts if a.id == account)


def _broker_orders(daemon: Daemon, account: str) -> list[dict]:
    return read_state(daemon.data_dir / "paper" / f"{account}.json")["orders"]


def _position(client: Client, account: str) -> int:
    book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=[account]), timeout=10)
    return sum(p.quantity for a in book.accounts for p in a.positions if p.instrument == "NSE:INFY")


@dataclass
class _Listener:
    """A StreamOrderEvents opened before the outage, read in a thread until the test is done with it."""

    client: Client
    after: int
    events: list[orders_pb2.OrderEvent] = field(default_factory=list)
    ended: grpc.StatusCode | None = None

    def __post_init__(self) -> None:
        self._call = self.client.orders.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=self.after), timeout=600
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                self.events.append(event)
        except grpc.RpcError as exc:
            self.ended = exc.code()

    def close(self) -> list[orders_pb2.OrderEvent]:
        """What it delivered, then the rest resumed from its last sequence as a client would."""
        self._call.cancel()
        self._thread.join(timeout=10)
        assert self.ended in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), self.ended
        last = self.events[-1].sequence if self.events else self.after
        resumed = self.client.orders.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=last, catch_up_only=True), timeout=30
        )
        events = self.events + list(resumed)
        sequences = [e.sequence for e in events]
        assert sequences == list(range(self.after + 1, self.after + 1 + len(events))), "a gap or a repeat"
        return events


def _filled(events: list[orders_pb2.OrderEvent], order_id: str) -> int:
    return sum(e.fill.quantity for e in events if e.HasField("fill") and e.fill.order_id == order_id)


def _bracket(client: Client) -> strategies_pb2.Strategy:
    """A bracket buying 10 INFY at the simulated Kite (at 1000), its target at 1010 and its stop at 995."""
    entry = strategies_pb2.OrderSpec(
        account="k1",
        instrument="NSE:INFY",
        side=common_pb2.SIDE_BUY,
        quantity=10,
        product=common_pb2.PRODUCT_MIS,
        order_type=common_pb2.ORDER_TYPE_MARKET,
    )
    request = strategies_pb2.CreateStrategyRequest(
        client_strategy_id="outage-bracket",
        bracket=strategies_pb2.BracketParams(entry=entry, stop_loss="5", target="10"),
    )
    return client.strategies.CreateStrategy(request, timeout=30)


def _strategy(client: Client, strategy_id: str) -> strategies_pb2.Strategy:
    return client.strategies.GetStrategy(strategies_pb2.GetStrategyRequest(id=strategy_id), timeout=10)


@pytest.fixture
def kite() -> Iterator[SimServer]:
    server = SimServer(SimSettings(broker="kite", market=FLAT, apps=[APP], users=[sim_user("KA0001")])).start()
    pin_price(server.url, "NSE:INFY", 1000)
    yield server
    server.stop()


def test_orders_wait_out_a_database_outage(tmp_path: Path, database: Database, kite: SimServer) -> None:
    daemon = _daemon(tmp_path, database, "daemon-db-outage.log", extra=sim_account("k1", "kite", kite.url, "KA0001"))
    daemon.start()
    try:
        with daemon.client() as client:
            client.security.AddUser(security_pb2.AddUserRequest(name="late", role=security_pb2.ROLE_VIEWER))
            late_token = client.security.CreateToken(security_pb2.CreateTokenRequest(user="late")).secret
            first = place(client, quantity=1)
            wait_for(lambda: order_in(client, first.order.order_id, S.ORDER_STATUS_FILLED))
            bracket = _bracket(client)
            wait_for(lambda: len(_strategy(client, bracket.id).order_ids) == 3, timeout=30)
            listener = _Listener(client, head_sequence(client))
            partial = place(client, quantity=250, account="beta")  # fills 100 a second, mostly during the outage
            broker_before = len(_broker_orders(daemon, "alpha"))

            database.stop()
            pin_price(kite.url, "NSE:INFY", 1012)  # the bracket's target fills at the broker meanwhile
            retried = f"outage-{uuid.uuid4().hex[:8]}"
            _unavailable(lambda: place(client, client_order_id=retried, quantity=1))
            assert len(_broker_orders(daemon, "alpha")) == broker_before, "refused, yet sent to the broker"
            _unavailable(lambda: client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=first.order.order_id)))
            _unavailable(lambda: client.orders.ListOrders(orders_pb2.ListOrdersRequest()))
            _unavailable(lambda: client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest()))
            with daemon.client(token=late_token) as late:
                _unavailable(lambda: late.security.WhoAmI(security_pb2.WhoAmIRequest()))
            wait_for(lambda: _services_serving(client) == {health_pb2.HealthCheckResponse.NOT_SERVING}, timeout=10)
            # What is served from memory still answers: beta's fills reach its broker but cannot be stored.
            wait_for(lambda: _status(client, "beta") == accounts_pb2.ACCOUNT_STATUS_DEGRADED, timeout=10)

            database.start()
            placed, _ = _until_accepted(lambda: place(client, client_order_id=retried, quantity=1))
            again = place(client, client_order_id=retried, quantity=1)
            assert again.duplicate and again.order.order_id == placed.order.order_id
            listed = client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=1000)).orders
            assert [o.order_id for o in listed if o.client_order_id == retried] == [placed.order.order_id]
            wait_for(lambda: order_in(client, placed.order.order_id, S.ORDER_STATUS_FILLED))
            wait_for(lambda: order_in(client, partial.order.order_id, S.ORDER_STATUS_FILLED), timeout=20)
            assert [o["tag"] for o in _broker_orders(daemon, "alpha")].count(placed.order.order_id) == 1
            wait_for(lambda: _position(client, "beta") == 250 and _position(client, "alpha") == 2)
            done = wait_for(
                lambda: (s := _strategy(client, bracket.id)).status == strategies_pb2.STRATEGY_STATUS_COMPLETED and s,
                timeout=RECOVERY_SECONDS,
            )
            assert len(done.order_ids) == 3
            wait_for(lambda: _services_serving(client) == {health_pb2.HealthCheckResponse.SERVING}, timeout=10)

            events = listener.close()
            assert _filled(events, partial.order.order_id) == 250 and _filled(events, placed.order.order_id) == 1
            audit = client.security.TailAudit(security_pb2.TailAuditRequest(limit=1000)).entries
            refused = [e for e in audit if retried in e.detail and e.outcome.startswith("UNAVAILABLE")]
            assert refused and UNREACHABLE in refused[0].outcome, "the refusal's audit entry was held and written"
            assert client.security.VerifyAudit(security_pb2.VerifyAuditRequest()).ok
    finally:
        daemon.stop()


SOAK_CYCLES = 5
SOAK_UP_SECONDS = 3.0
SOAK_DOWN_SECONDS = 3.0


@dataclass
class _Trader:
    """Places market orders one after another on alpha and beta, each retried under its client order id while
    the daemon answers UNAVAILABLE, as a bot waiting out an outage does; any other error ends it."""

    client: Client
    placed: dict[str, orders_pb2.Order] = field(default_factory=dict)
    refusals: int = 0
    failure: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                n = len(self.placed)
                client_order_id = f"soak-{n}"
                account = "alpha" if n % 2 else "beta"
                reply, refusals = _until_accepted(
                    lambda c=client_order_id, a=account: place(self.client, client_order_id=c, account=a, quantity=1)
                )
                self.placed[client_order_id] = reply.order
                self.refusals += refusals
                time.sleep(0.05)
        except BaseException as exc:
            self.failure = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=RECOVERY_SECONDS)
        assert not self._thread.is_alive(), "an order was still refused long after the database came back"
        assert self.failure is None, self.failure


def _all_filled(client: Client, order_ids: set[str]) -> bool:
    orders = client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=5000), timeout=10).orders
    return all(o.status == S.ORDER_STATUS_FILLED for o in orders if o.order_id in order_ids)


@pytest.mark.soak
def test_orders_keep_flowing_through_repeated_outages(tmp_path: Path, database: Database) -> None:
    daemon = _daemon(tmp_path, database, "daemon-db-outage-soak.log")
    daemon.start()
    try:
        with daemon.client() as client:
            listener = _Listener(client, head_sequence(client))
            trader = _Trader(client)
            for _ in range(SOAK_CYCLES):
                time.sleep(SOAK_UP_SECONDS)
                database.stop()
                time.sleep(SOAK_DOWN_SECONDS)
                database.start()
            time.sleep(SOAK_UP_SECONDS)
            trader.stop()
            assert trader.refusals >= SOAK_CYCLES, "the outages were never felt"
            placed = trader.placed
            ids = {o.order_id for o in placed.values()}
            assert len(ids) == len(placed), "two client order ids got the same order"
            wait_for(lambda: _all_filled(client, ids), timeout=RECOVERY_SECONDS)

            listed = client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=5000), timeout=10).orders
            assert sorted(o.client_order_id for o in listed) == sorted(placed), "exactly one order per client id"
            for account in ("alpha", "beta"):
                tags = [o["tag"] for o in _broker_orders(daemon, account)]
                mine = {o.order_id for o in placed.values() if o.account == account}
                assert sorted(tags) == sorted(mine), f"{account}: the broker's orders are not the acknowledged ones"
                count = len(mine)
                wait_for(lambda a=account, n=count: _position(client, a) == n, timeout=RECOVERY_SECONDS)
            events = listener.close()
            assert all(_filled(events, order_id) == 1 for order_id in ids)
            wait_for(lambda: _services_serving(client) == {health_pb2.HealthCheckResponse.SERVING}, timeout=10)
            assert client.security.VerifyAudit(security_pb2.VerifyAuditRequest()).ok
    finally:
        daemon.stop()
