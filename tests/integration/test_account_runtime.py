"""The account runtime against a real PostgreSQL and the paper broker, with broker faults injected.

These pin the exactly-once rule: an ambiguous submission stays in flight and is found by its tag,
never sent again; a refused one is rejected; a repeated client order id sends nothing. And recovery:
an account refuses orders until it has reconciled, adopts orders it did not place, and rejects an
in-flight order its broker never got.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.account import AccountRuntime
from engine.brokers.base import Ambiguous, BrokerOrder, BrokerTrade, Funds, PlaceRequest, Rejected, Unavailable
from engine.brokers.pacing import OrderGate, OrderQueueFull
from engine.brokers.paper import PaperBroker
from engine.domain import InstrumentId, Order, OrderRequest, OrderStatus, OrderType, Product, Side
from engine.domain.accounts import AccountStatus, CircuitState, DayCount
from engine.domain.ids import new_order_id
from engine.domain.sessions import IST
from engine.errors import FailedPrecondition, ServiceUnavailable
from engine.instrument_master import InstrumentMaster
from engine.routing import CircuitBreaker
from engine.sim.prices import PricePath
from engine.store.database import DatabaseUnreachable, EmbeddedPostgres, create_pool
from engine.store.migrate import migrate
from engine.store.orders import OrderStore


class FlakyBroker(PaperBroker):
    """A paper broker whose next place() fails in a chosen way, before or after reaching the book."""

    fail_next: str = ""
    down: bool = False  # every call is refused, as when the broker's host is unreachable
    placed_at: list[float]
    while_answering: Callable[[], Awaitable[None]] | None = None  # runs between accepting and a lost answer
    funds_refused: bool = False
    trades_withheld: frozenset[str] = frozenset()  # broker order ids whose trades the trade book does not show yet
    trades_twice: bool = False  # the trade book lists every trade twice

    async def place(self, request: PlaceRequest) -> str:
        mode, self.fail_next = self.fail_next, ""
        if mode == "refused" or self.down:
            raise Unavailable("connection refused")
        self.placed_at = [*getattr(self, "placed_at", []), time.monotonic()]
        broker_id = await super().place(request)
        if mode == "lost-response":
            if self.while_answering is not None:
                await self.while_answering()
            raise Ambiguous("read timeout after the order was sent")
        return broker_id

    async def orders(self) -> list[BrokerOrder]:
        if self.down:
            raise Unavailable("connection refused")
        return await super().orders()

    async def trades(self) -> list[BrokerTrade]:
        shown = [t for t in await super().trades() if t.broker_order_id not in self.trades_withheld]
        return shown * 2 if self.trades_twice else shown

    async def funds(self) -> Funds:
        if self.funds_refused:
            raise Rejected("403: funds are not available for this app")
        return await super().funds()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = EmbeddedPostgres.start(tmp_path_factory.mktemp("runtime-db"))
    yield db.dsn
    db.stop()


Built = tuple[AccountRuntime, FlakyBroker, OrderStore]


@pytest.fixture
async def build(database: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Built]]]:
    """Start runtimes over a flaky paper broker; keyword arguments go to AccountRuntime."""
    pool = await create_pool(database, 4)
    await migrate(pool)
    started: list[AccountRuntime] = []

    async def make(**options: Any) -> Built:
        store = options.pop("store_type", OrderStore)(pool)
        paper = PaperBroker.open(
            "paper", InstrumentMaster.default(), PricePath(1, 0.0), state_path=None, opening_cash=Decimal("1000000")
        )
        broker = FlakyBroker("paper", paper.exchange)
        account = f"acct-{tmp_path.name[-12:]}-{len(started)}"
        interval = options.pop("sync_interval", 0.05)
        broker.down = options.pop("down", False)
        broker.funds_refused = options.pop("funds_refused", False)
        rt = AccountRuntime(account, "paper", broker, store, sync_interval=interval, **options)
        await rt.start()
        started.append(rt)
        return rt, broker, store

    yield make
    for rt in started:
        await rt.stop()
    await pool.close()


@pytest.fixture
async def runtime(build: Callable[..., Awaitable[Built]]) -> Built:
    return await build()


def _request(account: str, client_id: str, quantity: int = 5) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_id,
        account=account,
        instrument=InstrumentId.parse("NSE:INFY"),
        side=Side.BUY,
        quantity=quantity,
        product=Product.MIS,
        order_type=OrderType.MARKET,
    )


def _broker_orders_tagged(broker: PaperBroker, tag: str) -> int:
    return sum(1 for o in broker.exchange.orders() if o.tag == tag)


async def test_lost_response_stays_in_flight_and_is_adopted_by_tag(runtime) -> None:
    rt, broker, store = runtime
    broker.fail_next = "lost-response"
    sent = await rt.submit(_request(rt.account, f"{rt.account}-lost"))
    order = sent.order
    assert not sent.duplicate and not sent.unreached
    assert order.status is OrderStatus.SUBMITTED and order.broker_order_id is None
    await rt.sync()
    found = await store.get(order.order_id)
    assert found is not None and found.status is OrderStatus.FILLED and found.broker_order_id
    assert _broker_orders_tagged(broker, order.order_id) == 1


async def test_trades_reported_after_their_order_ended_still_become_its_fills(runtime) -> None:
    rt, broker, store = runtime
    broker.exchange.depth_per_second = 100  # 250 units fill over three simulated seconds
    order = (await rt.submit(_request(rt.account, f"{rt.account}-lagging", quantity=250))).order
    await rt.sync()
    assert order.broker_order_id
    broker.trades_withheld = frozenset({order.broker_order_id})  # the trade book lags from here on
    await asyncio.sleep(1.1)
    ended = await rt.cancel(order.order_id)
    assert ended.status is OrderStatus.CANCELLED
    at_broker = next(o for o in broker.exchange.orders() if o.broker_order_id == order.broker_order_id)
    assert ended.filled_quantity < at_broker.filled_quantity, "the cancel was folded before the last trades"
    broker.trades_withheld = frozenset()
    await rt.sync()
    final = await store.get(order.order_id)
    fills = [f.quantity for _, f in await store.fills_after(0) if f.order_id == order.order_id]
    assert final is not None and final.status is OrderStatus.CANCELLED
    assert final.filled_quantity == sum(fills) == at_broker.filled_quantity


async def test_a_sync_that_finds_the_order_before_its_lost_answer_arrives_stands(runtime) -> None:
    rt, broker, store = runtime
    broker.fail_next = "lost-response"
    broker.while_answering = rt.sync  # the sync finds it by tag, fills it, and lets it go from the live set
    sent = await rt.submit(_request(rt.account, f"{rt.account}-raced"))
    assert sent.order.status is OrderStatus.FILLED and sent.order.broker_order_id
    stored = await store.get(sent.order.order_id)
    assert stored == sent.order and "in flight" not in stored.status_message
    assert _broker_orders_tagged(broker, sent.order.order_id) == 1


async def test_refused_before_sending_is_rejected_and_nothing_reaches_the_broker(runtime) -> None:
    rt, broker, _ = runtime
    broker.fail_next = "refused"
    sent = await rt.submit(_request(rt.account, f"{rt.account}-refused"))
    order = sent.order
    assert sent.unreached, "a refused connection never reached the broker: routing may send it elsewhere"
    assert order.status is OrderStatus.REJECTED and "not sent" in order.status_message
    assert "connection refused" in order.status_message
    assert _broker_orders_tagged(broker, order.order_id) == 0
    assert rt.snapshot().consecutive_errors == 1


async def test_repeated_client_order_id_sends_nothing(runtime) -> None:
    rt, broker, _ = runtime
    first = (await rt.submit(_request(rt.account, f"{rt.account}-twice"))).order
    again = await rt.submit(_request(rt.account, f"{rt.account}-twice"))
    assert again.duplicate and again.order.order_id == first.order_id
    assert len(broker.exchange.orders()) == 1


async def test_client_order_id_reused_for_another_order_is_refused(runtime) -> None:
    rt, broker, _ = runtime
    await rt.submit(_request(rt.account, f"{rt.account}-reuse"))
    other = replace(_request(rt.account, f"{rt.account}-reuse"), side=Side.SELL)
    with pytest.raises(FailedPrecondition, match="already used for a different order"):
        await rt.submit(other)
    assert len(broker.exchange.orders()) == 1


async def test_fills_replayed_by_the_broker_apply_once(runtime) -> None:
    rt, broker, store = runtime
    broker.exchange.depth_per_second = 100  # 250 fills over three simulated seconds
    order = (await rt.submit(_request(rt.account, f"{rt.account}-once", quantity=250))).order
    await rt.sync()
    first = await store.get(order.order_id)
    assert first is not None and first.status is OrderStatus.PARTIALLY_FILLED
    rt._trade_ids.clear()  # a stale cache: the broker's trades all look new again
    await rt.sync()
    again = await store.get(order.order_id)
    assert again is not None and again.filled_quantity == first.filled_quantity
    for _ in range(100):
        await asyncio.sleep(0.1)
        await rt.sync()
        done = await store.get(order.order_id)
        if done is not None and done.status is OrderStatus.FILLED:
            break
    fills = [f.quantity for _, f in await store.fills_after(0) if f.order_id == order.order_id]
    assert sum(fills) == 250 and done.filled_quantity == 250  # each broker trade counted once


async def test_a_trade_listed_twice_in_one_trade_book_is_one_fill(runtime) -> None:
    rt, broker, store = runtime
    broker.trades_twice = True
    order = (await rt.submit(_request(rt.account, f"{rt.account}-listed-twice", quantity=2))).order
    await rt.sync()
    done = await store.get(order.order_id)
    assert done is not None and done.status is OrderStatus.FILLED and done.filled_quantity == 2
    fills = [f for _, f in await store.fills_after(0) if f.order_id == order.order_id]
    assert sum(f.quantity for f in fills) == 2 and len({f.trade_id for f in fills}) == len(fills)


async def test_a_restart_reads_back_only_the_trades_a_broker_may_report_again(build, database: str) -> None:
    """Trades older than KNOWN_ORDERS_DAYS are not read back at a start, but a live order's are, however old: its
    broker trades must still be known as recorded, so each one is applied once."""
    rt, broker, store = await build(sync_interval=60)
    done = (await rt.submit(_request(rt.account, f"{rt.account}-done", quantity=2))).order
    await rt.sync()
    broker.exchange.depth_per_second = 100  # 250 fills over three simulated seconds
    working = (await rt.submit(_request(rt.account, f"{rt.account}-working", quantity=250))).order
    await rt.sync()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE fills SET filled_at = filled_at - interval '30 days' WHERE account_id = $1",
                           rt.account)  # fmt: skip
    finally:
        await conn.close()

    async def trades(order: Order) -> dict[str, int]:
        """Trade id -> quantity of the order's recorded fills."""
        book = await store.book_fills(rt.account, order.instrument, order.product, 1 << 62)
        return {f.trade_id: f.quantity for f in book if f.order_id == order.order_id}

    assert (await store.get(working.order_id)).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    restarted = AccountRuntime(rt.account, "paper", broker, store, sync_interval=60)
    await restarted.start()
    try:
        assert set(await trades(working)) <= restarted._trade_ids
        assert not set(await trades(done)) & restarted._trade_ids
        for _ in range(100):
            await asyncio.sleep(0.1)
            await restarted.sync()
            if (await store.get(working.order_id)).status is OrderStatus.FILLED:  # type: ignore[union-attr]
                break
        assert sum((await trades(working)).values()) == 250, "each broker trade applied once"
        assert sum((await trades(done)).values()) == 2
    finally:
        await restarted.stop()


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def test_circuit_opens_after_consecutive_failures_then_probes_and_closes(build) -> None:
    rt, broker, store = await build(breaker=CircuitBreaker(3, reset_seconds=0.3), sync_interval=60)
    broker.down = True
    for n in range(3):
        sent = await rt.submit(_request(rt.account, f"{rt.account}-down-{n}"))
        assert sent.unreached and sent.order.status is OrderStatus.REJECTED
    assert rt.snapshot().circuit is CircuitState.OPEN
    with pytest.raises(ServiceUnavailable, match="circuit is open after 3 failures"):
        await rt.submit(_request(rt.account, f"{rt.account}-refused-fast"))
    assert await store.get_by_client_id(f"{rt.account}-refused-fast") is None, "refused before anything persisted"
    retry = await rt.submit(_request(rt.account, f"{rt.account}-down-0"))
    assert retry.duplicate and retry.order.status is OrderStatus.REJECTED, "a retry gets its order, not a refusal"
    await asyncio.sleep(0.35)
    assert rt.snapshot().circuit is CircuitState.HALF_OPEN
    await rt.sync()  # the half-open trial fails: open for another period
    assert rt.snapshot().circuit is CircuitState.OPEN
    broker.down = False
    await asyncio.sleep(0.35)
    await rt.sync()  # this trial succeeds
    assert rt.snapshot().circuit is CircuitState.CLOSED
    assert (await rt.submit(_request(rt.account, f"{rt.account}-back"))).order.status is not OrderStatus.REJECTED
    assert rt.snapshot().error_rate > 0, "the failures are remembered in the rate routing reads"


async def test_full_order_queue_refuses_before_persisting(build) -> None:
    gate = OrderGate("q", [(1, 1.0)], max_queue=2, clock=_utc_now)
    rt, _, store = await build(gate=gate, sync_interval=60)
    await rt.submit(_request(rt.account, f"{rt.account}-first"))  # uses the second's only slot
    waiting = [asyncio.create_task(rt.submit(_request(rt.account, f"{rt.account}-w{n}"))) for n in range(2)]
    await asyncio.sleep(0.05)
    assert rt.snapshot().queue_depth == 2
    with pytest.raises(OrderQueueFull, match="order_queue_limit 2"):
        await rt.submit(_request(rt.account, f"{rt.account}-overflow"))
    assert await store.get_by_client_id(f"{rt.account}-overflow") is None
    assert all(not sent.unreached for sent in await asyncio.gather(*waiting))


async def test_orders_are_paced_under_the_account_rate(build) -> None:
    gate = OrderGate("pace", [(4, 1.0)], max_queue=50, clock=_utc_now)
    rt, broker, _ = await build(gate=gate, sync_interval=60)
    await asyncio.gather(*(rt.submit(_request(rt.account, f"{rt.account}-p{n}")) for n in range(10)))
    stamps = sorted(broker.placed_at)
    assert len(stamps) == 10
    busiest = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert busiest <= 4, f"{busiest} orders reached the broker within one second; the limit is 4"


async def test_orders_today_counts_each_stored_order_once_and_survives_a_restart(runtime) -> None:
    rt, broker, store = runtime
    today = datetime.now(UTC).astimezone(IST).date()
    first = await rt.submit(_request(rt.account, f"{rt.account}-n1"))
    again = await rt.submit(_request(rt.account, f"{rt.account}-n1"))
    broker.fail_next = "refused"
    refused = await rt.submit(_request(rt.account, f"{rt.account}-n2"))  # stored, then rejected: it counts
    assert [s.orders_today.on(today) for s in (first, again, refused)] == [1, 1, 2]
    assert rt.snapshot().orders_today == refused.orders_today

    await rt.sync()
    filled = await store.get(first.order.order_id)
    assert filled is not None and filled.average_price is not None
    mark = rt.snapshot().marks[filled.instrument]
    assert rt.snapshot().pnl_today == filled.filled_quantity * (mark - filled.average_price)

    restarted = AccountRuntime(rt.account, "paper", broker, store, sync_interval=60)
    await restarted.start()
    try:
        assert restarted.snapshot().orders_today == DayCount(today, 2)
    finally:
        await restarted.stop()


# -- recovery and reconciliation ------------------------------------------------------------------------------


def _in_flight(account: str, client_id: str, at: datetime) -> Order:
    """An order as a daemon killed between storing it and hearing from its broker leaves it."""
    return Order(
        order_id=new_order_id(), client_order_id=client_id, account=account,
        instrument=InstrumentId.parse("NSE:INFY"), side=Side.BUY, quantity=3, product=Product.MIS,
        order_type=OrderType.MARKET, status=OrderStatus.SUBMITTED, created_at=at, updated_at=at,
    )  # fmt: skip


async def test_an_account_refuses_orders_until_it_has_reconciled(build) -> None:
    rt, broker, store = await build(down=True, sync_interval=60)
    assert rt.snapshot().status is AccountStatus.RECONCILING and "connection refused" in rt.snapshot().last_error
    with pytest.raises(ServiceUnavailable, match=r"is reconciling with its broker .* no order was sent"):
        await rt.submit(_request(rt.account, f"{rt.account}-early"))
    assert await store.get_by_client_id(f"{rt.account}-early") is None
    await rt.sync()  # still down: still reconciling, not merely degraded
    assert rt.snapshot().status is AccountStatus.RECONCILING
    broker.down = False
    await rt.sync()
    assert rt.snapshot().status is AccountStatus.ACTIVE
    assert (await rt.submit(_request(rt.account, f"{rt.account}-early"))).order.status is not OrderStatus.REJECTED


async def test_reconciled_books_end_reconciling_even_if_a_later_read_is_refused(build) -> None:
    rt, _, _ = await build(funds_refused=True, sync_interval=60)
    snapshot = rt.snapshot()
    assert snapshot.status is AccountStatus.DEGRADED, "its orders and trades agree: it may trade"
    assert "funds are not available" in snapshot.last_error, "a refused read is reported, not swallowed"
    assert (await rt.submit(_request(rt.account, f"{rt.account}-after"))).order.status is not OrderStatus.REJECTED


async def test_orders_placed_outside_the_daemon_are_adopted_once_as_external(build) -> None:
    rt, broker, store = await build(sync_interval=60)
    outside = broker.exchange.place(
        PlaceRequest(tag="", instrument=InstrumentId.parse("NSE:TCS"), side=Side.SELL, quantity=4,
                     product=Product.MIS, order_type=OrderType.MARKET)
    )  # fmt: skip
    await rt.sync()
    await rt.sync()
    adopted = await store.get_by_client_id(f"external:{rt.account}:{outside}")
    assert adopted is not None and adopted.external and adopted.broker_order_id == outside
    assert adopted.status is OrderStatus.FILLED and adopted.filled_quantity == 4 and adopted.side is Side.SELL
    assert "not placed by the daemon" in adopted.status_message
    fills = [f for _, f in await store.fills_after(0) if f.order_id == adopted.order_id]
    assert sum(f.quantity for f in fills) == 4, "its trades are fills the ledger counts"
    restarted = AccountRuntime(rt.account, "paper", broker, store, sync_interval=60)
    await restarted.start()
    await restarted.stop()
    mine = await store.list(accounts=[rt.account], limit=100)
    assert [o.order_id for o in mine if o.broker_order_id == outside] == [adopted.order_id], "adopted once"


async def test_in_flight_orders_after_a_crash_are_found_by_tag_or_rejected_after_the_grace(build) -> None:
    rt, broker, store = await build(sync_interval=60)
    await rt.stop()
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    sent = _in_flight(rt.account, f"{rt.account}-sent", long_ago)
    lost = _in_flight(rt.account, f"{rt.account}-lost", long_ago)
    for order in (sent, lost):
        await store.insert_new(order)
    broker.exchange.place(
        PlaceRequest(tag=sent.order_id, instrument=sent.instrument, side=sent.side, quantity=sent.quantity,
                     product=sent.product, order_type=sent.order_type)
    )  # fmt: skip
    restarted = AccountRuntime(rt.account, "paper", broker, store, sync_interval=60, in_flight_grace=0.3)
    await restarted.start()
    try:
        found = await store.get(sent.order_id)
        assert found is not None and found.status is OrderStatus.FILLED and not found.external
        waiting = await store.get(lost.order_id)
        assert waiting is not None and waiting.status is OrderStatus.SUBMITTED, "the grace counts from the start"
        await asyncio.sleep(0.35)
        await restarted.sync()
        given_up = await store.get(lost.order_id)
        assert given_up is not None and given_up.status is OrderStatus.REJECTED
        assert f"not sent: paper has no order tagged {lost.order_id}" in given_up.status_message
        assert _broker_orders_tagged(broker, lost.order_id) == 0
        late = broker.exchange.place(
            PlaceRequest(tag=lost.order_id, instrument=lost.instrument, side=lost.side, quantity=lost.quantity,
                         product=lost.product, order_type=lost.order_type)
        )  # fmt: skip
        await restarted.sync()
        stray = await store.get_by_client_id(f"external:{rt.account}:{late}")
        assert stray is not None and stray.external, "an order that arrives after all is still not lost"
        assert f"carries the tag of daemon order {lost.order_id}, which is REJECTED" in stray.status_message
    finally:
        await restarted.stop()


async def test_an_order_waiting_for_its_pacing_turn_is_never_given_up(build) -> None:
    gate = OrderGate("slow", [(1, 1.0)], max_queue=5, clock=_utc_now)
    rt, broker, _ = await build(gate=gate, sync_interval=0.05, in_flight_grace=0.1)
    sends = [asyncio.create_task(rt.submit(_request(rt.account, f"{rt.account}-q{n}"))) for n in range(3)]
    done = await asyncio.gather(*sends)
    assert all(s.order.status is not OrderStatus.REJECTED for s in done), [s.order for s in done]
    assert all(_broker_orders_tagged(broker, s.order.order_id) == 1 for s in done)


class LostCommitAnswer(OrderStore):
    """A store whose next insert commits, then loses the answer, as when the database goes down mid-reply."""

    lose_next = False

    async def insert_new(self, order: Order) -> tuple[Order, list]:
        stored = await super().insert_new(order)
        if self.lose_next:
            self.lose_next = False
            raise DatabaseUnreachable("server closed the connection unexpectedly")
        return stored


async def test_an_intent_whose_commit_answer_was_lost_is_rejected_as_never_sent(build) -> None:
    rt, broker, store = await build(store_type=LostCommitAnswer, sync_interval=60)
    for name in ("retried", "synced"):
        store.lose_next = True
        with pytest.raises(DatabaseUnreachable):
            await rt.submit(_request(rt.account, f"{rt.account}-{name}"))
        stored = await store.get_by_client_id(f"{rt.account}-{name}")
        assert stored is not None and stored.status is OrderStatus.SUBMITTED, "it was stored after all"
    again = await rt.submit(_request(rt.account, f"{rt.account}-retried"))  # the retry the error asks for
    assert again.duplicate and again.order.status is OrderStatus.REJECTED
    assert "place it again with a new id" in again.order.status_message
    await rt.sync()  # the other is found by the sync, without waiting out the in-flight grace
    synced = await store.get_by_client_id(f"{rt.account}-synced")
    assert synced is not None and synced.status is OrderStatus.REJECTED and "not sent" in synced.status_message
    assert _broker_orders_tagged(broker, again.order.order_id) == _broker_orders_tagged(broker, synced.order_id) == 0


async def test_the_brokers_record_of_a_refused_order_is_that_order_not_an_external_one(runtime) -> None:
    rt, broker, store = runtime
    refused = (await rt.submit(_request(rt.account, f"{rt.account}-too-big", quantity=100_000))).order
    assert refused.status is OrderStatus.REJECTED and refused.broker_order_id is None
    assert _broker_orders_tagged(broker, refused.order_id) == 1, "the broker keeps the refused order in its book"
    await rt.sync()
    linked = await store.get(refused.order_id)
    assert linked is not None and linked.status is OrderStatus.REJECTED and linked.broker_order_id
    assert not [o for o in await store.list(accounts=[rt.account]) if o.external]
