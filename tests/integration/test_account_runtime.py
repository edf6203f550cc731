"""The account runtime against a real PostgreSQL and the paper broker, with broker faults injected.

These pin the exactly-once rule: an ambiguous submission stays in flight and is found by its tag,
never sent again; a refused one is rejected; a repeated client order id sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from engine.account import AccountRuntime
from engine.brokers.base import Ambiguous, PlaceRequest, Unavailable
from engine.brokers.paper import PaperBroker
from engine.domain import InstrumentId, OrderRequest, OrderStatus, OrderType, Product, Side
from engine.errors import FailedPrecondition
from engine.instrument_master import InstrumentMaster
from engine.sim.prices import PricePath
from engine.store.database import EmbeddedPostgres, create_pool
from engine.store.migrate import migrate
from engine.store.orders import OrderStore


class FlakyBroker(PaperBroker):
    """A paper broker whose next place() fails in a chosen way, before or after reaching the book."""

    fail_next: str = ""

    async def place(self, request: PlaceRequest) -> str:
        mode, self.fail_next = self.fail_next, ""
        if mode == "refused":
            raise Unavailable("connection refused")
        broker_id = await super().place(request)
        if mode == "lost-response":
            raise Ambiguous("read timeout after the order was sent")
        return broker_id


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = EmbeddedPostgres.start(tmp_path_factory.mktemp("runtime-db"))
    yield db.dsn
    db.stop()


@pytest.fixture
async def runtime(database: str, tmp_path: Path) -> AsyncIterator[tuple[AccountRuntime, FlakyBroker, OrderStore]]:
    pool = await create_pool(database, 4)
    await migrate(pool)
    store = OrderStore(pool)
    paper = PaperBroker.open(
        "paper", InstrumentMaster.default(), PricePath(1, 0.0), state_path=None, opening_cash=Decimal("1000000")
    )
    broker = FlakyBroker("paper", paper.exchange)
    account = f"acct-{tmp_path.name[-12:]}"
    rt = AccountRuntime(account, "paper", broker, store, sync_interval=0.05)
    await rt.start()
    yield rt, broker, store
    await rt.stop()
    await pool.close()


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
    order, duplicate = await rt.submit(_request(rt.account, f"{rt.account}-lost"))
    assert not duplicate
    assert order.status is OrderStatus.SUBMITTED and order.broker_order_id is None
    await rt.sync()
    found = await store.get(order.order_id)
    assert found is not None and found.status is OrderStatus.FILLED and found.broker_order_id
    assert _broker_orders_tagged(broker, order.order_id) == 1


async def test_refused_before_sending_is_rejected_and_nothing_reaches_the_broker(runtime) -> None:
    rt, broker, _ = runtime
    broker.fail_next = "refused"
    order, _ = await rt.submit(_request(rt.account, f"{rt.account}-refused"))
    assert order.status is OrderStatus.REJECTED and "connection refused" in order.status_message
    assert _broker_orders_tagged(broker, order.order_id) == 0
    assert rt.snapshot().consecutive_errors == 1


async def test_repeated_client_order_id_sends_nothing(runtime) -> None:
    rt, broker, _ = runtime
    first, _ = await rt.submit(_request(rt.account, f"{rt.account}-twice"))
    again, duplicate = await rt.submit(_request(rt.account, f"{rt.account}-twice"))
    assert duplicate and again.order_id == first.order_id
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
    order, _ = await rt.submit(_request(rt.account, f"{rt.account}-once", quantity=250))
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
