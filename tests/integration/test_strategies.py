"""Strategies end to end: the daemon runs them against a simulated Kite whose prices the tests move.

One daemon for the module. Each test trades its own instrument, so moving one test's price moves nothing
of another's. The schedule runs on a shifted strategy clock (TRADEMASTER_STRATEGY_CLOCK) that starts just
before 09:15 IST on a trading Monday, so it fires within the test on any day of the week. The restart test
comes last: it kills the daemon with SIGKILL in the middle of a live bracket.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import grpc
import pytest

from engine.api.strategy_runner import CLOCK_ENV
from engine.domain.sessions import IST
from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import APP, FLAT, LAKH, pin_price, sim_account, sim_user
from trademaster.v1 import accounts_pb2, common_pb2, operations_pb2, orders_pb2, portfolio_pb2, strategies_pb2

S = strategies_pb2
# The strategies' clock starts 20 s before the 09:15 IST firing on Monday 23 November 2026, a trading day.
CLOCK_START = datetime(2026, 11, 23, 9, 14, 40, tzinfo=IST)


@pytest.fixture(scope="module")
def kite() -> Iterator[SimServer]:
    users = [sim_user("KA0001", 50 * LAKH), sim_user("KA0002", 10_000), sim_user("KA0003", 50 * LAKH)]
    server = SimServer(SimSettings(broker="kite", market=FLAT, apps=[APP], users=users)).start()
    for symbol in ("INFY", "SBIN", "TCS", "RELIANCE", "ITC", "LT", "HDFCBANK"):
        price(server, symbol, 1000)
    yield server
    server.stop()


def price(server: SimServer, symbol: str, value: float) -> None:
    pin_price(server.url, f"NSE:{symbol}", value)


@pytest.fixture(scope="module")
def daemon(kite: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("strategies") / "data", ROOT / "test-artifacts" / "daemon-strategies.log")
    d.config.write_text(
        f"""
{d.tables()}
"""
        + sim_account("k1", "kite", kite.url, "KA0001", ["desk"])
        + sim_account("k2", "kite", kite.url, "KA0002", ["desk"])
        + sim_account("k3", "kite", kite.url, "KA0003", [])
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CLOCK_ENV, CLOCK_START.isoformat())
        d.start()
        with d.client() as client:
            wait_for(lambda: _all_active(client), timeout=60)
        yield d
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


def _all_active(client) -> bool:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in accounts)


def _spec(symbol: str, side: int, quantity: int, account: str = "k1", **extra: object) -> S.OrderSpec:
    fields: dict[str, object] = {"product": common_pb2.PRODUCT_MIS, "order_type": common_pb2.ORDER_TYPE_MARKET}
    return S.OrderSpec(account=account, instrument=f"NSE:{symbol}", side=side, quantity=quantity, **{**fields, **extra})


def _create(client, client_id: str, **params: object) -> S.Strategy:
    return client.strategies.CreateStrategy(S.CreateStrategyRequest(client_strategy_id=client_id, **params), timeout=30)


def _get(client, strategy_id: str) -> S.Strategy:
    return client.strategies.GetStrategy(S.GetStrategyRequest(id=strategy_id), timeout=10)


def _events(client, strategy_id: str) -> list[S.StrategyEvent]:
    """Every event of the strategy so far (the stream never ends: read until a quiet moment)."""
    request = S.StreamStrategyEventsRequest(strategy_id=strategy_id, after_sequence=0)
    seen = []
    try:
        for event in client.strategies.StreamStrategyEvents(request, timeout=1.5):
            seen.append(event)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
    return seen


def _kinds(client, strategy_id: str) -> list[str]:
    return [e.kind for e in _events(client, strategy_id)]


def _wait_kind(client, strategy_id: str, kind: str, timeout: float = 30) -> None:
    wait_for(lambda: kind in _kinds(client, strategy_id), timeout=timeout, interval=0.3)


def _wait_status(client, strategy_id: str, status: int, timeout: float = 30) -> S.Strategy:
    return wait_for(lambda: (s := _get(client, strategy_id)).status == status and s, timeout=timeout, interval=0.3)


def _orders(client, strategy: S.Strategy) -> list[orders_pb2.Order]:
    return [client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=i), timeout=10) for i in strategy.order_ids]


def _at_broker(kite: SimServer, order_id: str) -> int:
    return sum(1 for u in kite.venue.users.values() for o in u.exchange.orders() if o.tag == order_id)


def test_bracket_exits_at_the_target_and_cancels_the_stop(daemon: Daemon, kite: SimServer) -> None:
    with daemon.client() as client:
        made = _create(
            client, "bracket-target", name="infy long",
            bracket=S.BracketParams(entry=_spec("INFY", common_pb2.SIDE_BUY, 10), stop_loss="5", target="10"),
        )  # fmt: skip
        assert made.status == S.STRATEGY_STATUS_RUNNING and made.kind == "bracket" and made.owner == "admin"
        again = _create(
            client, "bracket-target", name="infy long",
            bracket=S.BracketParams(entry=_spec("INFY", common_pb2.SIDE_BUY, 10), stop_loss="5", target="10"),
        )  # fmt: skip
        assert again.id == made.id
        _wait_kind(client, made.id, "protection_placed")
        wait_for(lambda: len(_get(client, made.id).order_ids) == 3, timeout=30)
        price(kite, "INFY", 1012)
        done = _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED)
        orders = {o.client_order_id.removeprefix(f"{made.id}-"): o for o in _orders(client, done)}
    kinds = _kinds_of(daemon, made.id)
    assert "entry_filled" in kinds and "target_filled" in kinds and kinds[-1] == "completed", kinds
    statuses = sorted(orders_pb2.OrderStatus.Name(o.status) for o in orders.values())
    assert statuses == ["ORDER_STATUS_CANCELLED", "ORDER_STATUS_FILLED", "ORDER_STATUS_FILLED"], orders
    assert all(_at_broker(kite, o.order_id) == 1 for o in orders.values())


def _kinds_of(daemon: Daemon, strategy_id: str) -> list[str]:
    with daemon.client() as client:
        return _kinds(client, strategy_id)


def test_bracket_exits_at_the_stop_and_cancels_the_target(daemon: Daemon, kite: SimServer) -> None:
    with daemon.client() as client:
        made = _create(
            client, "bracket-stop",
            bracket=S.BracketParams(entry=_spec("SBIN", common_pb2.SIDE_SELL, 5), stop_loss="4", target="20"),
        )  # fmt: skip
        _wait_kind(client, made.id, "protection_placed")
        price(kite, "SBIN", 1010)
        done = _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED)
        orders = _orders(client, done)
    kinds = _kinds_of(daemon, made.id)
    assert "stop_filled" in kinds and "target_filled" not in kinds, kinds
    assert sorted(orders_pb2.OrderStatus.Name(o.status) for o in orders) == [
        "ORDER_STATUS_CANCELLED", "ORDER_STATUS_FILLED", "ORDER_STATUS_FILLED",
    ]  # fmt: skip


def test_trailing_stop_follows_the_price_then_triggers(daemon: Daemon, kite: SimServer) -> None:
    with daemon.client() as client:
        bought = client.orders.PlaceOrder(
            orders_pb2.PlaceOrderRequest(
                client_order_id="trail-position", account="k1", instrument="NSE:TCS", side=common_pb2.SIDE_BUY,
                quantity=8, product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
            ),
            timeout=30,
        )  # fmt: skip
        wait_for(
            lambda: (
                client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=bought.order.order_id)).status
                == orders_pb2.ORDER_STATUS_FILLED
            )
        )
        wait_for(lambda: _position(client, "k1", "NSE:TCS") == 8, timeout=30)
        made = _create(
            client, "trail-tcs",
            trailing_stop=S.TrailingStopParams(
                account="k1", instrument="NSE:TCS", product=common_pb2.PRODUCT_MIS, trail=S.Trail(points="10")
            ),
        )  # fmt: skip
        _wait_kind(client, made.id, "protection_placed")
        price(kite, "TCS", 1030)
        _wait_kind(client, made.id, "trailed")
        stop = next(o for o in _orders(client, _get(client, made.id)) if o.order_type == common_pb2.ORDER_TYPE_SL_M)
        assert Decimal(stop.trigger_price) >= Decimal("1015"), stop
        price(kite, "TCS", 1012)
        _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED)
        wait_for(lambda: _position(client, "k1", "NSE:TCS") == 0, timeout=30)


def _position(client, account: str, instrument: str) -> int:
    book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=[account]), timeout=10)
    return sum(
        p.quantity for a in book.accounts for p in a.positions
        if p.instrument == instrument and p.product == common_pb2.PRODUCT_MIS
    )  # fmt: skip


def test_a_rejected_entry_is_tried_again(daemon: Daemon) -> None:
    """k2 has 10,000 rupees: an entry worth 5 lakh is rejected by the broker; the strategy enters again."""
    reentry = S.ReEntry(max_attempts=1, cooldown_seconds=1, after_reject=True)
    with daemon.client() as client:
        made = _create(
            client, "reenter",
            bracket=S.BracketParams(
                entry=_spec("ITC", common_pb2.SIDE_BUY, 500, account="k2"), stop_loss="5", target="5", reentry=reentry
            ),
        )  # fmt: skip
        done = _wait_status(client, made.id, S.STRATEGY_STATUS_FAILED, timeout=45)
        orders = _orders(client, done)
    assert [orders_pb2.OrderStatus.Name(o.status) for o in orders] == ["ORDER_STATUS_REJECTED"] * 2, orders
    assert len({o.client_order_id for o in orders}) == 2


def test_schedule_fires_on_its_cron(daemon: Daemon) -> None:
    with daemon.client() as client:
        made = _create(
            client, "every-minute",
            schedule=S.ScheduleParams(cron="* * * * *", order=_spec("LT", common_pb2.SIDE_BUY, 1), max_runs=1),
        )  # fmt: skip
        done = _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED, timeout=90)  # once its one run is placed
        (order,) = _orders(client, done)
        wait_for(lambda: _orders(client, done)[0].status == orders_pb2.ORDER_STATUS_FILLED, timeout=30)
    assert order.client_order_id.startswith(f"{made.id}-run-202611230")  # 23 Nov 2026, IST, on the shifted clock
    assert "run_placed" in _kinds_of(daemon, made.id)


def test_mtm_guard_squares_off_and_halts(daemon: Daemon, kite: SimServer) -> None:
    with daemon.client() as client:
        made = _create(
            client, "guard-k3",
            mtm_guard=S.MtmGuardParams(
                scope=common_pb2.Scope(kind=common_pb2.SCOPE_KIND_ACCOUNT, name="k3"), stop_loss="100",
                then=common_pb2.TRADING_STATE_HALTED,
            ),
        )  # fmt: skip
        client.orders.PlaceOrder(
            orders_pb2.PlaceOrderRequest(
                client_order_id="mtm-position", account="k3", instrument="NSE:HDFCBANK", side=common_pb2.SIDE_BUY,
                quantity=10, product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
            ),
            timeout=30,
        )  # fmt: skip
        wait_for(lambda: _position(client, "k3", "NSE:HDFCBANK") == 10, timeout=30)
        price(kite, "HDFCBANK", 980)
        _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED, timeout=45)
        wait_for(lambda: _position(client, "k3", "NSE:HDFCBANK") == 0, timeout=30)
        states = client.operations.GetTradingStates(operations_pb2.GetTradingStatesRequest(), timeout=10)
        halted = [e for e in states.entries if e.scope.name == "k3"]
        assert halted and halted[0].state == common_pb2.TRADING_STATE_HALTED, states
        assert halted[0].set_by == f"strategy:{made.id}"
        client.operations.SetTradingState(
            operations_pb2.SetTradingStateRequest(
                scope=common_pb2.Scope(kind=common_pb2.SCOPE_KIND_ACCOUNT, name="k3"),
                state=common_pb2.TRADING_STATE_ACTIVE, reason="test over",
            ),
            timeout=10,
        )  # fmt: skip
    kinds = _kinds_of(daemon, made.id)
    assert "squared_off" in kinds and "trading_state" in kinds, kinds


def test_pause_resume_stop_and_the_cli(daemon: Daemon) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "clients.cli", *args, "--server", daemon.address],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = cli("strategy", "bracket", "NSE:INFY", "buy", "1", "--account", "k1", "--type", "limit",
                  "--price", "900", "--stop-loss", "5", "--target", "10", "--id", "cli-bracket", "--json")  # fmt: skip
    strategy_id = created.split('"id": "')[1].split('"')[0]
    with daemon.client() as client:
        _wait_kind(client, strategy_id, "entry_placed")
    assert "PAUSED" in cli("strategy", "pause", strategy_id)
    assert "RUNNING" in cli("strategy", "resume", strategy_id)
    assert "cli-bracket" not in cli("strategy", "list") or strategy_id in cli("strategy", "list")
    stopped = cli("strategy", "stop", strategy_id)
    assert "STOPPED" in stopped and "cancelled 1 working order" in stopped
    events = cli("strategy", "events", strategy_id)
    assert "paused" in events and "resumed" in events and "stopped" in events
    with daemon.client() as client, pytest.raises(grpc.RpcError) as bad:
        _create(client, "bad-params", bracket=S.BracketParams(entry=_spec("INFY", common_pb2.SIDE_BUY, 1), target="5"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bracket.stop_loss" in bad.value.details()


def test_a_bracket_survives_a_kill_in_the_middle(daemon: Daemon, kite: SimServer) -> None:
    with daemon.client() as client:
        made = _create(
            client, "bracket-restart",
            bracket=S.BracketParams(entry=_spec("RELIANCE", common_pb2.SIDE_BUY, 4), stop_loss="5", target="10"),
        )  # fmt: skip
        _wait_kind(client, made.id, "protection_placed")
        wait_for(lambda: len(_get(client, made.id).order_ids) == 3, timeout=30)
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    price(kite, "RELIANCE", 990)  # the stop's trigger is crossed while the daemon is down
    daemon.start()
    with daemon.client() as client:
        done = _wait_status(client, made.id, S.STRATEGY_STATUS_COMPLETED, timeout=60)
        orders = _orders(client, done)
        wait_for(lambda: _position(client, "k1", "NSE:RELIANCE") == 0, timeout=30)
    assert len(orders) == 3, orders
    exits = [o for o in orders if o.status == orders_pb2.ORDER_STATUS_FILLED and o.side == common_pb2.SIDE_SELL]
    assert len(exits) == 1, orders
    assert all(_at_broker(kite, o.order_id) == 1 for o in orders)
    assert "stop_filled" in _kinds_of(daemon, made.id)
