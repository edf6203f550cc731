"""After a daemon restart the same orders, positions and event history are there, and work goes on."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from clients.python import Client
from tests.integration.daemon import Daemon, head_sequence, wait_for
from tests.integration.test_orders import order_in, place
from trademaster.v1 import common_pb2, orders_pb2, portfolio_pb2

S = orders_pb2.OrderStatus


def _state(daemon: Daemon) -> tuple[list[tuple], list[tuple], list[int]]:
    with daemon.client() as client:
        orders = client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=5000), timeout=10).orders
        book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(), timeout=10)
        events = client.orders.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True), timeout=30
        )
        sequences = [e.sequence for e in events]
    return (
        [(o.order_id, o.status, o.filled_quantity, o.average_price, o.broker_order_id) for o in orders],
        [(p.account, p.instrument, p.product, p.quantity, p.average_price, p.realised_pnl) for p in
         [q for a in book.accounts for q in a.positions]],
        sequences,
    )  # fmt: skip


def _through_fill(client: Client, after: int, order_id: str) -> list[orders_pb2.OrderEvent] | None:
    """Every event after `after`, once they include `order_id` filled."""
    events = list(
        client.orders.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=after, catch_up_only=True), timeout=30
        )
    )
    filled = any(e.order.order_id == order_id and e.order.status == S.ORDER_STATUS_FILLED for e in events)
    return events if filled else None


def test_restart_keeps_orders_positions_and_events(tmp_path: Path) -> None:
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    daemon = Daemon(tmp_path / "data", artifacts / "daemon-restart.log")
    daemon.start()
    try:
        with daemon.client() as client:
            bought = place(client, quantity=10)
            sold = place(client, quantity=4, side=common_pb2.SIDE_SELL, account="alpha")
            resting = place(client, order_type=common_pb2.ORDER_TYPE_LIMIT, price="1000", quantity=2)
            for reply in (bought, sold):
                wait_for(lambda r=reply: order_in(client, r.order.order_id, S.ORDER_STATUS_FILLED))
        before = _state(daemon)
        assert daemon.stop() == 0

        daemon.start()
        after = _state(daemon)
        assert after == before
        with daemon.client() as client:
            assert order_in(client, resting.order.order_id, S.ORDER_STATUS_OPEN)
            cancelled = client.orders.CancelOrder(
                orders_pb2.CancelOrderRequest(order_id=resting.order.order_id), timeout=30
            )
            assert cancelled.status == S.ORDER_STATUS_CANCELLED
            again = place(client, client_order_id=bought.order.client_order_id, quantity=10)
            assert again.duplicate and again.order.order_id == bought.order.order_id
            new = place(client, quantity=1)
            wait_for(lambda: order_in(client, new.order.order_id, S.ORDER_STATUS_FILLED))
            # The stream serves what its hub has pumped, a moment behind the orders table GetOrder reads.
            events = wait_for(lambda: _through_fill(client, before[2][-1], new.order.order_id))
            resumed = [e.sequence for e in events]
            assert resumed == list(range(before[2][-1] + 1, resumed[-1] + 1))
            assert head_sequence(client) >= resumed[-1]
    finally:
        daemon.stop()


def _databases_of(daemon: Daemon) -> list[psutil.Process]:
    """The PostgreSQL servers running on the daemon's embedded data directory."""
    pgdata = str(daemon.data_dir / "pg")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        command = proc.info["cmdline"] or []
        if command and command[0].endswith("/postgres") and pgdata in command:
            found.append(proc)
    return found


def test_a_daemon_stopped_after_a_kill_stops_the_database_it_adopted(tmp_path: Path) -> None:
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    daemon = Daemon(tmp_path / "data", artifacts / "daemon-adopted-database.log")
    daemon.start()
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert _databases_of(daemon), "a killed daemon's database outlives it, for the next start to adopt"
    daemon.start()
    assert daemon.stop() == 0
    wait_for(lambda: not _databases_of(daemon), timeout=30)
