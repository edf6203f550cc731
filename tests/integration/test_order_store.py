"""The order store's writes, each one statement: what they store, the events they number, and what they refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from engine.domain import Fill, InstrumentId, Order, OrderStatus, OrderType, Product, Side
from engine.domain.ids import new_order_id
from engine.store.database import create_pool
from engine.store.migrate import migrate
from engine.store.orders import ClientIdTaken, DuplicateFill, OrderStore
from tests.integration.postgres import Database

INFY = InstrumentId.parse("NSE:INFY")
AT = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    running = Database(tmp_path_factory.mktemp("db"))
    yield running
    running.stop()


@pytest.fixture
async def pool(server: Database) -> AsyncIterator[asyncpg.Pool]:
    opened = await create_pool(server.dsn, 4)
    await migrate(opened)
    yield opened
    await opened.close()


def _order(client_order_id: str, quantity: int = 10) -> Order:
    return Order(
        order_id=new_order_id(),
        client_order_id=client_order_id,
        account="alpha",
        instrument=INFY,
        side=Side.BUY,
        quantity=quantity,
        product=Product.MIS,
        order_type=OrderType.MARKET,
        status=OrderStatus.SUBMITTED,
        created_at=AT,
        updated_at=AT,
    )


def _fill(order: Order, trade_id: str, quantity: int, price: str) -> Fill:
    return Fill("alpha", trade_id, order.order_id, INFY, Side.BUY, Product.MIS, quantity, Decimal(price), AT)


async def test_a_new_order_is_stored_with_one_event_and_a_repeated_id_returns_the_original(pool: asyncpg.Pool) -> None:
    store = OrderStore(pool)
    order = _order("store-new")
    stored, events = await store.insert_new(order)
    assert stored == order
    assert [(e.account, e.order) for e in events] == [("alpha", order)]
    again, none = await store.insert_new(_order("store-new", quantity=99))
    assert again == order and none == [], "the original comes back, and nothing more is stored or announced"
    assert await store.get(order.order_id) == order
    count = await pool.fetchval("SELECT count(*) FROM order_events WHERE payload->>'order_id' = $1", order.order_id)
    assert count == 1


async def test_an_id_a_routed_order_holds_is_refused_and_nothing_is_stored(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO client_order_ids (client_order_id, order_id) VALUES ('store-routed', 'R1')")
    head = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM order_events")
    with pytest.raises(ClientIdTaken, match="store-routed was already used for a routed order"):
        await OrderStore(pool).insert_new(_order("store-routed"))
    assert await pool.fetchval("SELECT coalesce(max(seq), 0) FROM order_events") == head


async def test_a_record_numbers_the_fills_first_and_stores_each_with_its_events_number(pool: asyncpg.Pool) -> None:
    store = OrderStore(pool)
    order, _ = await store.insert_new(_order("store-fills"))
    fills = [_fill(order, "T-1", 4, "1500.05"), _fill(order, "T-2", 6, "1500.10")]
    filled = order.moved_to(OrderStatus.OPEN, AT, broker_order_id="B1")
    for fill in fills:
        filled = filled.with_fill(fill)
    filled = filled.moved_to(OrderStatus.FILLED, AT)
    events = await store.record(filled, fills)
    assert [e.fill for e in events] == [*fills, None] and events[-1].order == filled
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    rows = await pool.fetch("SELECT trade_id, seq FROM fills WHERE order_id = $1 ORDER BY trade_id", order.order_id)
    assert [(r["trade_id"], r["seq"]) for r in rows] == [("T-1", events[0].sequence), ("T-2", events[1].sequence)]
    assert await store.get(order.order_id) == filled
    read_back = await store.fills_after(events[0].sequence - 1)
    assert [f for _, f in read_back if f.order_id == order.order_id] == fills


async def test_a_fill_already_stored_is_refused_and_changes_nothing(pool: asyncpg.Pool) -> None:
    store = OrderStore(pool)
    order, _ = await store.insert_new(_order("store-dup"))
    first = _fill(order, "T-9", 4, "1500.05")
    part = order.moved_to(OrderStatus.OPEN, AT).with_fill(first)
    await store.record(part, [first])
    head = await pool.fetchval("SELECT max(seq) FROM order_events")
    second = _fill(order, "T-10", 6, "1500.10")
    stale = part.with_fill(first).with_fill(second).moved_to(OrderStatus.FILLED, AT)
    with pytest.raises(DuplicateFill, match="fills already recorded for alpha: T-9"):
        await store.record(stale, [first, second])
    assert await store.get(order.order_id) == part
    assert await pool.fetchval("SELECT max(seq) FROM order_events") == head
    assert await pool.fetchval("SELECT count(*) FROM fills WHERE trade_id = 'T-10'") == 0


async def test_the_same_trade_twice_in_one_record_is_an_error_not_a_stale_view(pool: asyncpg.Pool) -> None:
    """DuplicateFill tells a caller to reload; the same trade twice in one call would fail again after any reload."""
    store = OrderStore(pool)
    order, _ = await store.insert_new(_order("store-twice"))
    twice = [_fill(order, "T-20", 4, "1500.05"), _fill(order, "T-20", 4, "1500.05")]
    with pytest.raises(asyncpg.UniqueViolationError):
        await store.record(order.moved_to(OrderStatus.OPEN, AT), twice)
    assert await store.get(order.order_id) == order
