"""The strategy runner's decisions, against fakes of everything it drives: what it feeds back after a refusal,
how it replays a Place, what a failed square-off does, who may run a strategy, which events it feeds, and what
pausing stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest

from engine.api import validation
from engine.api.strategy_runner import Services, StrategyRunner, _CannotRun, _Live
from engine.domain import InstrumentId, Order, OrderEvent, OrderStatus, OrderType, Product, Side
from engine.errors import FailedPrecondition, InvalidArgument
from engine.risk.states import Scope, ScopeKind, TradingState
from engine.routing.batch import LegOutcome, LegResult
from engine.security.tokens import Role
from engine.store.strategies import Pending, StrategyRecord
from engine.store.users import User
from engine.strategies.base import (
    Finish,
    Modify,
    OrderUpdate,
    Place,
    Refused,
    SetTradingState,
    SquareOff,
    StrategyStatus,
    Tick,
    Watch,
)
from engine.strategy_host import Opened, Stepped

SID = "SAAAAAAAAAAAAAAAA"
T0 = datetime(2026, 1, 22, 4, 0, tzinfo=UTC)
INFY = InstrumentId.parse("NSE:INFY")
GROUP = Scope(ScopeKind.GROUP, "desk")


def order(key: str, status: OrderStatus = OrderStatus.OPEN, account: str = "a1", **changes: Any) -> Order:
    placed = Order(
        order_id=f"o-{key}",
        client_order_id=f"{SID}-{key}",
        account=account,
        instrument=INFY,
        side=Side.SELL,
        quantity=10,
        product=Product.MIS,
        order_type=OrderType.LIMIT,
        status=status,
        created_at=T0,
        updated_at=T0,
        price=Decimal("110"),
    )
    return replace(placed, **changes)


def record(kind: str = "bracket", status: StrategyStatus = StrategyStatus.RUNNING) -> StrategyRecord:
    return StrategyRecord(
        SID, "c1", "ann", kind, "", {}, ("a1",), {}, status, "", (), 0, 0, T0, T0
    )  # fmt: skip


@dataclass
class Fakes:
    """Every collaborator of the runner, recording what it was asked."""

    orders: dict[str, Order] = field(default_factory=dict)  # the daemon's orders by id
    keys: dict[str, str] = field(default_factory=dict)  # the strategy's key -> order id
    events: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[tuple[StrategyStatus, str]] = field(default_factory=list)
    states_set: list[Scope] = field(default_factory=list)
    role: Role = Role.TRADER
    legs: tuple[LegResult, ...] = ()
    hub_events: list[OrderEvent] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    # StrategyStore
    async def orders_of(self, strategy_id: str) -> dict[str, str]:
        return dict(self.keys)

    async def add_order(self, strategy_id: str, key: str, order_id: str) -> None:
        self.keys[key] = order_id

    async def add_event(self, strategy_id: str, kind: str, message: str, order_id: str = "") -> None:
        self.events.append((kind, message))

    async def set_status(self, strategy_id: str, status: StrategyStatus, message: str, kind: str) -> None:
        self.statuses.append((status, message))

    # OrderStore
    async def get(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def get_by_client_id(self, client_order_id: str) -> Order | None:
        return next((o for o in self.orders.values() if o.client_order_id == client_order_id), None)

    async def list(self, *, accounts: Any, open_only: bool, limit: int) -> list[Order]:
        return [o for o in self.orders.values() if o.account in accounts and not o.is_terminal]

    async def cancel(self, order_id: str, caller: Any) -> Order:
        self.cancelled.append(order_id)
        return self.orders[order_id]

    # UserStore
    async def user(self, name: str) -> User:
        return User(name, self.role, ("a1",), T0)

    # Operations, TradingStates, AccountRegistry
    async def exit_positions(self, *args: Any, **kwargs: Any) -> Any:
        return type("Exited", (), {"legs": self.legs, "cancelled": None})()

    def authorize(self, *args: Any) -> None:
        pass

    async def set_state(self, scope: Scope, *args: Any, **kwargs: Any) -> None:
        self.states_set.append(scope)

    def usable_scope_accounts(self, scope: Scope, caller: Any) -> list[str]:
        return ["a1"]

    # EventHub
    async def stream(self, cursor: int) -> AsyncIterator[OrderEvent]:
        for event in self.hub_events:
            if event.sequence > cursor:
                yield event
        await asyncio.Event().wait()

    # Gateway
    async def call(self, actor: str, method: str, ref: Any) -> Any:
        return await ref


class _Method:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class FakeActor:
    def __init__(self) -> None:
        self.steps: list[tuple[list[Any], int]] = []
        self.open, self.step, self.ack = _Method(self._open), _Method(self._step), _Method(self._ack)

    async def _open(self, now: datetime) -> Opened:
        return Opened((), Watch(), 0)

    async def _step(self, inputs: list[Any], cursor: int, done: list[int]) -> Stepped:
        self.steps.append((list(inputs), cursor))
        return Stepped((), Watch())

    async def _ack(self, done: list[int]) -> None:
        pass


def runner(f: Fakes) -> StrategyRunner:
    ns = type("NS", (), {})
    store = ns()
    store.orders, store.add_order, store.add_event, store.set_status = (
        f.orders_of, f.add_order, f.add_event, f.set_status
    )  # fmt: skip
    gw = ns()
    gw.store, gw.call = f, f.call
    gw.quotes = ns()
    gw.quotes.subscribe = gw.quotes.unsubscribe = lambda *a: None
    gw.quotes.prices = lambda instruments: {}
    gw.snapshot = lambda account: ns()
    users = ns()
    users.get = f.user
    hub = ns()
    hub.stream = f.stream
    operations, states = ns(), ns()
    operations.exit_positions = f.exit_positions
    states.authorize, states.set = f.authorize, f.set_state
    services = Services(cast(Any, None), cast(Any, f), cast(Any, operations), cast(Any, states), cast(Any, f))
    return StrategyRunner(cast(Any, store), cast(Any, hub), cast(Any, gw), cast(Any, users), services, "dsn")


async def test_a_refused_modify_is_fed_after_the_orders_latest_state() -> None:
    """A resize refused because the order just filled: the fill must reach the logic before the refusal."""
    f = Fakes()
    f.keys["target-1-1"] = "o-target-1-1"
    f.orders["o-target-1-1"] = filled = order("target-1-1", OrderStatus.FILLED, filled_quantity=10)
    answers = await runner(f)._answers(
        _Live(record(), False), Modify("target-1-1", quantity=20), FailedPrecondition("complete")
    )
    assert answers == [OrderUpdate("target-1-1", filled), Refused("target-1-1", "modify", "complete")]


async def test_a_replayed_place_whose_order_exists_is_no_refusal() -> None:
    """After a crash the outbox's Place runs again; refused now (say, a lapsed login), it must not tell the
    logic its order was refused when the first attempt placed it."""
    f = Fakes()
    f.orders["o-entry-1"] = placed = order("entry-1")
    place = Place("entry-1", cast(Any, None))
    answers = await runner(f)._answers(_Live(record(), False), place, FailedPrecondition("login required"))
    assert answers == [OrderUpdate("entry-1", placed)]
    assert f.keys == {"entry-1": "o-entry-1"} and f.events == []


async def test_a_square_off_with_a_failed_exit_still_restricts_the_scope_then_fails_the_strategy() -> None:
    f = Fakes(legs=(LegResult("a1", 10, LegOutcome.FAILED, error="market closed"),))
    pending = [
        Pending(1, SquareOff(GROUP, "loss")),
        Pending(2, SetTradingState(GROUP, TradingState.HALTED, "loss")),
        Pending(3, Finish(StrategyStatus.COMPLETED, "squared off and set HALTED")),
    ]
    answers, done, finished = await runner(f)._execute(_Live(record("mtm_guard"), False), pending)
    assert finished and done == [1, 2, 3] and answers == []
    assert len(f.states_set) == 1  # HALTED all the same: the loss limit was crossed
    ((status, message),) = f.statuses
    assert status is StrategyStatus.FAILED and "market closed" in message and "done all the same" in message


async def test_an_owner_who_may_no_longer_trade_fails_the_strategy() -> None:
    f = Fakes(role=Role.VIEWER)
    with pytest.raises(_CannotRun, match="may not trade"):
        await runner(f)._principal(_Live(record(), False))


async def test_the_feed_takes_only_the_strategys_orders_on_its_accounts_and_tracks_what_it_scanned() -> None:
    f = Fakes()
    mine, stray, other = order("stop-1-1"), order("stop-1-1", account="a2"), order("x", client_order_id="u-1")
    f.hub_events = [OrderEvent(n, T0, o.account, o) for n, o in enumerate([mine, stray, other], start=1)]
    live = _Live(record(), False)
    feed = asyncio.create_task(runner(f)._feed(live, 0))
    await asyncio.sleep(0.01)
    feed.cancel()
    assert live.updates == [OrderUpdate("stop-1-1", mine)]
    assert live.scanned == 3  # the cursor moves past others' events too, so a restart does not rescan them


async def test_a_paused_strategy_still_gets_its_order_updates_but_no_ticks() -> None:
    """Pausing must not turn off the OCO: an exit fill still reaches the bracket, which cancels the other leg;
    only Ticks (new entries, schedule runs, trailing, PnL checks) stop."""
    f = Fakes()
    f.hub_events = [OrderEvent(7, T0, "a1", order("target-1-1", OrderStatus.FILLED, filled_quantity=10))]
    live = _Live(record(), True, actor=FakeActor())
    session = asyncio.create_task(runner(f)._session(live))
    for _ in range(100):
        if live.actor.steps:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.6)  # longer than a tick interval
    live.stopping = True
    live.wake.set()
    await session
    inputs = [i for step, _ in live.actor.steps for i in step]
    assert [type(i) for i in inputs] == [OrderUpdate] and live.actor.steps[0][1] == 7
    assert not any(isinstance(i, Tick) for i in inputs)


async def test_a_dead_feed_ends_the_session_so_it_starts_again() -> None:
    """Without its feed a strategy would never hear of its fills; the session must not carry on deaf."""
    f = Fakes()

    async def broken(cursor: int) -> AsyncIterator[OrderEvent]:
        raise ConnectionError("event log unreachable")
        yield  # an async generator

    live = _Live(record(), True, actor=FakeActor())
    run = runner(f)
    run._hub.stream = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(run._session(live), 2)


async def test_a_scope_that_is_gone_fails_the_strategy() -> None:
    """A deleted group (or one no longer the owner's) must fail an MTM guard loudly, not stop it silently."""
    f = Fakes()

    def gone(scope: Scope, caller: Any) -> list[str]:
        raise InvalidArgument("scope.name", "unknown account group 'desk'")

    f.usable_scope_accounts = gone  # type: ignore[method-assign]
    live = _Live(record("mtm_guard"), False, watch=Watch(scopes=frozenset({GROUP})))
    with pytest.raises(_CannotRun, match="unknown account group"):
        await runner(f)._tick(live)


def test_strategy_order_ids_are_reserved_for_their_strategy() -> None:
    """A user's order under "<strategy id>-" would be fed to that strategy and counted as its; every path
    (PlaceOrder, batch, exit) validates client ids here, and only the strategy itself passes with its prefix."""
    with pytest.raises(InvalidArgument, match="reserved for strategies"):
        validation.client_id("client_order_id", f"{SID}-stop-1-1")
    with pytest.raises(InvalidArgument, match="reserved for strategies"):
        validation.client_id("client_order_id", f"{SID}-stop-1-1", strategy="SBBBBBBBBBBBBBBBB")
    assert validation.client_id("client_order_id", f"{SID}-stop-1-1", strategy=SID) == f"{SID}-stop-1-1"
    assert validation.client_id("client_order_id", "SAAAA-mine") == "SAAAA-mine"  # not a strategy id


async def test_stopping_cancels_working_orders_the_strategy_had_no_time_to_record() -> None:
    """An order placed just before a crash (or a cancelled task) is not in the strategy's records yet; its
    client-id prefix still finds it. Another user's orders on the account are left alone."""
    f = Fakes()
    f.keys["entry-1"] = "o-entry-1"
    f.orders["o-entry-1"] = order("entry-1")
    f.orders["o-stop-1-1"] = order("stop-1-1")  # placed, never recorded
    f.orders["o-x"] = order("x", client_order_id="user-1")
    cancelled, failed = await runner(f)._cancel_working(record(), cast(Any, None))
    assert (cancelled, failed) == (2, []) and sorted(f.cancelled) == ["o-entry-1", "o-stop-1-1"]
