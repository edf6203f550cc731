"""PaperBroker: the BrokerAdapter surface over SimExchange, and its state file across restarts."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.brokers.base import BrokerAdapter, BrokerOrderStatus, ModifyRequest, PlaceRequest, Rejected
from engine.brokers.paper import PaperBroker, read_state
from engine.domain import InstrumentId, OrderType, Product, Side
from engine.instrument_master import InstrumentMaster
from engine.sim.prices import PricePath
from tests.unit.conftest import FakeClock

D = Decimal
INFY = InstrumentId.parse("NSE:INFY")
TCS = InstrumentId.parse("NSE:TCS")
ST = BrokerOrderStatus


def open_broker(
    master: InstrumentMaster, prices: PricePath, clock: FakeClock, state_path: Path | None, **kwargs: Any
) -> PaperBroker:
    options: dict[str, Any] = {
        "opening_cash": D("1000000"),
        "holdings": {TCS: (10, D("3000"))},
        "half_spread_ticks": 1,
        "depth_per_second": 100,
    }
    options.update(kwargs)
    return PaperBroker.open(
        "paper1",
        master,
        prices,
        state_path=state_path,
        clock=clock,
        **options,
    )


def buy(quantity: int, **kwargs: Any) -> PlaceRequest:
    fields: dict[str, Any] = {
        "tag": "ord1",
        "instrument": INFY,
        "side": Side.BUY,
        "quantity": quantity,
        "product": Product.MIS,
        "order_type": OrderType.MARKET,
    }
    fields.update(kwargs)
    return PlaceRequest(**fields)


def saved(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def test_adapter_surface(master: InstrumentMaster, prices: PricePath, clock: FakeClock) -> None:
    broker = open_broker(master, prices, clock, None)
    adapter: BrokerAdapter = broker
    assert adapter.name == "paper1"
    oid = await adapter.place(buy(10, tag="abc123"))
    [order] = await adapter.orders()
    assert (order.broker_order_id, order.tag, order.status) == (oid, "abc123", ST.COMPLETE)
    [trade] = await adapter.trades()
    assert (trade.broker_order_id, trade.price) == (oid, D("1500.1"))
    positions = await adapter.positions()
    assert [(p.instrument, p.quantity) for p in positions] == [(INFY, 10)]
    [holding] = await adapter.holdings()
    assert (holding.instrument, holding.quantity) == (TCS, 10)
    funds = await adapter.funds()
    assert funds.used_margin == D("0.2") * 10 * D("1500.1")
    quotes = await adapter.quotes([INFY, InstrumentId.parse("NSE:NOSUCH")])
    assert list(quotes) == [INFY] and quotes[INFY].ask == D("1500.1")
    resting = await adapter.place(buy(5, order_type=OrderType.LIMIT, price=D("1400.0")))
    await adapter.modify(resting, ModifyRequest(price=D("1410.0")))
    await adapter.cancel(resting)
    assert (await adapter.orders())[-1].status is ST.CANCELLED
    with pytest.raises(Rejected, match="already CANCELLED"):
        await adapter.cancel(resting)
    await adapter.close()


async def test_every_change_is_persisted_at_once(
    master: InstrumentMaster, prices: PricePath, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "accounts" / "paper1.json"
    broker = open_broker(master, prices, clock, path)
    assert path.exists()  # a fresh account is saved at once
    oid = await broker.place(buy(250))
    assert read_state(path)["orders"][0]["filled_quantity"] == 100
    clock.tick()
    await broker.funds()  # a read that matched a fill must persist it
    assert read_state(path)["orders"][0]["filled_quantity"] == 200
    with pytest.raises(Rejected, match="must be positive"):
        await broker.place(buy(0))
    assert [o["status"] for o in read_state(path)["orders"]] == ["OPEN", "REJECTED"]
    await broker.cancel(oid)
    assert read_state(path)["orders"][0]["status"] == "CANCELLED"
    assert len(read_state(path)["trades"]) == 2
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]  # no temp files left behind


async def test_unchanged_reads_do_not_write(
    master: InstrumentMaster, prices: PricePath, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "paper1.json"
    broker = open_broker(master, prices, clock, path)
    await broker.place(buy(1))
    files = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    clock.tick(5)
    await broker.orders()
    await broker.positions()
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files


async def test_journal_is_compacted_and_a_torn_last_entry_is_ignored(
    master: InstrumentMaster, prices: PricePath, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PaperBroker, "COMPACT_AFTER", 3)
    path = tmp_path / "paper1.json"
    broker = open_broker(master, prices, clock, path)
    ids = [await broker.place(buy(1, tag=f"t{i}")) for i in range(8)]
    assert saved(path)["generation"] > 1
    assert len([p for p in tmp_path.iterdir() if ".journal." in p.name]) <= 1
    assert [o["order_id"] for o in read_state(path)["orders"]] == ids
    journal = path.with_name(f"{path.name}.journal.{saved(path)['generation']}")
    with journal.open("a", encoding="utf-8") as handle:
        handle.write('{"orders": [')  # a write cut short by a crash
    again = open_broker(master, prices, clock, path)
    assert [o.broker_order_id for o in await again.orders()] == ids


async def test_open_restores_and_keeps_filling(
    master: InstrumentMaster, prices: PricePath, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "paper1.json"
    first = open_broker(master, prices, clock, path)
    oid = await first.place(buy(250))
    await first.place(buy(2, instrument=TCS, side=Side.SELL, product=Product.CNC, tag="ord2"))
    funds_before = await first.funds()
    await first.close()

    # A restart: settings passed to open() are ignored in favour of the saved state.
    second = open_broker(master, prices, clock, path, opening_cash=D("5"), holdings={}, depth_per_second=1)
    assert await second.funds() == funds_before
    assert [h.quantity for h in await second.holdings()] == [8]
    orders = {o.broker_order_id: o for o in await second.orders()}
    assert orders[oid].filled_quantity == 100 and orders[oid].status is ST.OPEN
    clock.tick()
    assert next(o for o in await second.orders() if o.broker_order_id == oid).filled_quantity == 200
    clock.tick()
    assert next(o for o in await second.orders() if o.broker_order_id == oid).status is ST.COMPLETE
    new = await second.place(buy(1, tag="ord3"))
    assert new not in orders
    trade_ids = [t.trade_id for t in await second.trades()]
    assert len(trade_ids) == len(set(trade_ids)) == 5

    third = open_broker(master, prices, clock, path)
    assert await third.trades() == await second.trades()
    assert await third.positions() == await second.positions()


async def test_latency_delays_order_calls(master: InstrumentMaster, prices: PricePath, clock: FakeClock) -> None:
    """`paper.latency_ms` imitates a broker's round trip on the calls that change orders."""
    broker = open_broker(master, prices, clock, None, latency_ms=40)
    started = time.perf_counter()
    broker_id = await broker.place(buy(1, order_type=OrderType.LIMIT, price=D("1000")))
    placed = time.perf_counter()
    await broker.orders()
    await broker.cancel(broker_id)
    cancelled = time.perf_counter()
    assert placed - started >= 0.04
    assert cancelled - placed >= 0.04
    assert (await broker.orders())[0].status is ST.CANCELLED
