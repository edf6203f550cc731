"""Recovery after kill -9 with 100,000 orders in the database: the time from the restart to gRPC health SERVING.

The daemon runs with the integration tests' paper config (three accounts). While it serves, a history of orders
is written straight into its PostgreSQL, row for row as the daemon writes them: orders spread over the last days,
nearly all ended (filled in one or two fills, cancelled or rejected), a few hundred still open at the broker, each
with its order events. It is then killed with SIGKILL and started again; its embedded PostgreSQL, which outlives
it, is adopted as after a real crash. The restart's phases come from the daemon's log. The same kill -9 restart
of a daemon with no orders runs first, so the difference is what the orders cost.
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from rich.console import Console

from actors.ledger import catch_up
from engine.account import KNOWN_ORDERS_DAYS
from engine.domain import Fill, Order, OrderStatus, OrderType, Product, Side
from engine.domain.sessions import IST
from engine.instrument_master import InstrumentMaster
from engine.ledger import Ledger
from engine.store.database import create_pool
from engine.store.orders import _FILL_JSON, _ORDER_COLUMNS, _ORDER_JSON, OrderStore, _order_values
from tests.bench import report
from tests.integration.daemon import Daemon
from trademaster.v1 import portfolio_pb2

TARGET_S = 5.0
T = TypeVar("T")
ACCOUNTS = ("alpha", "beta", "gamma")  # tests/integration/daemon.py's test_config
_LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"
RAY_PHASE = "Ray started"  # ray.init: outside the daemon's control, reported apart
_FILL_COLUMNS = ["account_id", "trade_id", "order_id", "instrument", "side", "product", "quantity", "price",
                 "filled_at", "seq"]  # fmt: skip
# Lines of the daemon's log that end a phase of its start, in order; a phase whose line is missing (migrations
# log only when they apply one) is folded into the next.
PHASES = (
    ("embedded PostgreSQL ready", "interpreter, imports, PostgreSQL adopted"),
    ("Ray ready", RAY_PHASE),
    ("applied migrations", "migrations"),
    ("actors ready", "actors ready: ledger replay, accounts reloaded and reconciled"),
    ("serving gRPC", "market data, gateway, hubs, strategies: SERVING"),
)


@dataclass(frozen=True)
class History:
    """The orders written for the benchmark, as rows of each table."""

    orders: list[Order]
    fills: list[tuple[Fill, int]]  # with the sequence of the event announcing it
    events: list[tuple[int, datetime, str, str, str]]  # seq, at, account, kind, payload

    @property
    def live(self) -> int:
        return sum(not o.is_terminal for o in self.orders)


def make_history(count: int, live: int, days: int, first_sequence: int, seed: int = 11) -> History:
    """`count` orders of ACCOUNTS over the last `days` days, the newest `live` of them still OPEN at the broker.

    Of the ended ones, 70 % filled (a fifth of them in two fills), 20 % were cancelled and 10 % rejected. Each
    order has an event for its intent and one for its last state, and each fill an event; every stored order,
    event and fill is what the daemon itself would have written.
    """
    rng = random.Random(seed)
    listed = [i for i in InstrumentMaster.default() if i.id.exchange == "NSE" and i.lot_size == 1]
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    step = (now - timedelta(minutes=5) - start) / count
    sequence = first_sequence
    history = History([], [], [])

    def event(at: datetime, account: str, kind: str, payload: bytes) -> int:
        nonlocal sequence
        sequence += 1
        history.events.append((sequence, at, account, kind, payload.decode()))
        return sequence

    for n in range(count):
        created = start + step * n
        account, instrument = rng.choice(ACCOUNTS), rng.choice(listed)
        quantity = rng.randint(1, 200)
        intent = Order(
            order_id=f"BENCH{n:011d}", client_order_id=f"bench-history-{n}", account=account, instrument=instrument.id,
            side=rng.choice((Side.BUY, Side.SELL)), quantity=quantity, product=rng.choice((Product.MIS, Product.CNC)),
            order_type=OrderType.MARKET, status=OrderStatus.SUBMITTED, created_at=created, updated_at=created,
        )  # fmt: skip
        event(created, account, "order", _ORDER_JSON.dump_json(intent))
        ended = created + timedelta(seconds=1)
        sent = intent.moved_to(OrderStatus.OPEN, ended, broker_order_id=str(900_000_000_000 + n))
        roll = rng.random()
        if n >= count - live:
            order = sent
        elif roll < 0.7:
            order = sent
            parts = (quantity,) if quantity == 1 or rng.random() < 0.8 else (quantity // 2, quantity - quantity // 2)
            for k, part in enumerate(parts):
                price = (instrument.last_price + instrument.tick_size * rng.randint(-50, 50)).quantize(Decimal("0.01"))
                fill = Fill(account, str(500_000_000 + 2 * n + k), order.order_id, instrument.id, order.side,
                            order.product, part, price, ended)  # fmt: skip
                history.fills.append((fill, event(ended, account, "fill", _FILL_JSON.dump_json(fill))))
                order = order.with_fill(fill)
            order = order.moved_to(OrderStatus.FILLED, ended)
        elif roll < 0.9:
            order = sent.moved_to(OrderStatus.CANCELLED, ended)
        else:
            order = intent.moved_to(OrderStatus.REJECTED, ended, status_message="insufficient funds")
        event(ended, account, "order", _ORDER_JSON.dump_json(order))
        history.orders.append(order)
    return history


async def write_history(dsn: str, count: int, live: int, days: int) -> History:
    """Write a `make_history` into the database with COPY, after whatever events it holds, and move the event
    sequence past it, so the daemon's next event follows on."""
    conn = await asyncpg.connect(dsn)
    try:
        head = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM order_events")
        history = make_history(count, live, days, head)
        async with conn.transaction():
            await conn.copy_records_to_table(
                "orders", records=[_order_values(o) for o in history.orders], columns=_ORDER_COLUMNS.split(", ")
            )
            await conn.copy_records_to_table(
                "client_order_ids", records=[(o.client_order_id, o.order_id) for o in history.orders]
            )
            await conn.copy_records_to_table(
                "order_events", records=history.events, columns=["seq", "at", "account_id", "kind", "payload"]
            )
            fills = [
                (f.account, f.trade_id, f.order_id, str(f.instrument), f.side.value, f.product.value, f.quantity,
                 f.price, f.filled_at, seq)
                for f, seq in history.fills
            ]  # fmt: skip
            await conn.copy_records_to_table("fills", records=fills, columns=_FILL_COLUMNS)
            await conn.execute("SELECT setval('order_event_seq', $1)", history.events[-1][0])
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now: hint bits, visibility, statistics
    finally:
        await conn.close()
    return history


async def startup_reads(dsn: str) -> dict[str, float]:
    """The database work of a start, timed apart from Ray: the LedgerActor's replay of every fill (fetch, decode,
    FIFO) and the reads each AccountRuntime.start makes before it syncs with its broker, summed over the accounts."""
    pool = await create_pool(dsn, 2)
    timings: dict[str, float] = {}

    async def timed(name: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await work
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        return result

    try:
        store = OrderStore(pool)
        await timed("ledger replay (all fills)", catch_up(store, Ledger(), 0))
        since = datetime.now(UTC) - timedelta(days=KNOWN_ORDERS_DAYS)
        midnight = datetime.combine(datetime.now(IST).date(), datetime.min.time(), tzinfo=IST)
        for account in ACCOUNTS:
            live = await timed("account start: live orders", store.live_orders(account))
            await timed("account start: broker ids of recent orders", store.broker_order_ids(account, since))
            await timed("account start: orders today", store.count_since(account, midnight))
            await timed("account start: trade ids", store.trade_ids(account, since, [o.order_id for o in live]))
        return timings
    finally:
        await pool.close()


def _log_time(line: str) -> float | None:
    try:
        return datetime.strptime(line[:23], _LOG_TIME).timestamp()
    except ValueError:
        return None


def phases(log_text: str, spawned: float) -> dict[str, float]:
    """Seconds each phase of a start took, from the log lines written after `spawned` (a time.time())."""
    ends: dict[str, float] = {}
    for line in log_text.splitlines():
        at = _log_time(line)
        for marker, _ in PHASES:
            if at is not None and at >= spawned - 0.5 and marker in line and marker not in ends:
                ends[marker] = at
    took, previous = {}, spawned
    for marker, name in PHASES:
        if marker in ends:
            took[name] = max(0.0, ends[marker] - previous)
            previous = ends[marker]
    return took


def restart(daemon: Daemon) -> dict[str, Any]:
    """SIGKILL the serving daemon, start it again and time it to SERVING: as the daemon logs it, and as a client
    polling health every 0.1 s (Daemon.wait_serving) sees it."""
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    logged = daemon.log_path.stat().st_size
    spawned = time.time()
    daemon.start()
    seen = time.time() - spawned
    with daemon.log_path.open() as log:
        log.seek(logged)
        took = phases(log.read(), spawned)
    with daemon.client() as client:
        book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(), timeout=60)
    return {
        "to_serving_s": sum(took.values()),
        "without_ray_s": sum(took.values()) - took.get(RAY_PHASE, 0.0),
        "client_saw_serving_s": seen,
        "phases_s": took,
        "positions_after": sum(len(a.positions) for a in book.accounts),
    }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The restarts' median of each figure: the machine is shared, and one slow restart says little."""
    phases_seen = dict.fromkeys(name for run in runs for name in run["phases_s"])
    return {
        "restarts": runs,
        **{key: statistics.median(run[key] for run in runs)
           for key in ("to_serving_s", "without_ray_s", "client_saw_serving_s")},
        "phases_s": {name: statistics.median(run["phases_s"].get(name, 0.0) for run in runs) for name in phases_seen},
        "positions_after": runs[-1]["positions_after"],
    }  # fmt: skip


def _run_daemon(out: Path, name: str, restarts: int, prepare: Callable[[Daemon], dict[str, Any]]) -> dict[str, Any]:
    log_path = out / f"daemon-recovery-{name}.log"
    log_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"tm-bench-recovery-{name}-", ignore_cleanup_errors=True) as tmp:
        daemon = Daemon(Path(tmp) / "data", log_path)
        try:
            daemon.start()
            prepared = prepare(daemon)
            return {**prepared, **_median_of([restart(daemon) for _ in range(restarts)])}
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.stop()


def bench_recovery(out: Path, orders: int, live: int, days: int, restarts: int) -> dict[str, Any]:
    """`restarts` kill -9 restarts of a daemon with no orders, then as many of one with `orders` orders."""

    def nothing(_: Daemon) -> dict[str, Any]:
        return {}

    def history(daemon: Daemon) -> dict[str, Any]:
        started = time.perf_counter()
        written = asyncio.run(write_history(daemon.dsn(), orders, live, days))
        seeded = time.perf_counter() - started
        return {
            "orders": len(written.orders),
            "live_orders": written.live,
            "fills": len(written.fills),
            "events": len(written.events),
            "write_s": seeded,
            "startup_reads_s": asyncio.run(startup_reads(daemon.dsn())),
        }

    empty = _run_daemon(out, "empty", restarts, nothing)
    full = _run_daemon(out, "full", restarts, history)

    def ratio(key: str) -> float:
        return full[key] / empty[key] if empty[key] else math.nan

    return {
        "days": days,
        "restarts_each": restarts,
        "empty": empty,
        "full": full,
        "ratio": ratio("to_serving_s"),
        "ratio_without_ray": ratio("without_ray_s"),
        "target_s": TARGET_S,
        "met": full["to_serving_s"] <= TARGET_S,
        "met_without_ray": full["without_ray_s"] <= TARGET_S,
    }


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    empty, full = result["empty"], result["full"]
    target = f"≤ {result['target_s']:g} s"
    rows = [
        ("kill -9 to SERVING, with the orders (s)",
         f"{full['to_serving_s']:.2f} " + report.against(target, result["met"])),
        ("  the same without Ray's start (s)",
         f"{full['without_ray_s']:.2f} " + report.against(target, result["met_without_ray"])),
        ("kill -9 to SERVING, no orders (s)", f"{empty['to_serving_s']:.2f}"),
        ("  the same without Ray's start (s)", f"{empty['without_ray_s']:.2f}"),
        ("with orders / without", f"{result['ratio']:.2f} ({result['ratio_without_ray']:.2f} without Ray's start)"),
        ("each restart, with / without orders (s)",
         " ".join(f"{r['to_serving_s']:.1f}" for r in full["restarts"]) + " / "
         + " ".join(f"{r['to_serving_s']:.1f}" for r in empty["restarts"])),
        ("client saw SERVING, with / without orders (s)",
         f"{full['client_saw_serving_s']:.2f} / {empty['client_saw_serving_s']:.2f}"),
        ("phases, with / without orders:", ""),
    ]  # fmt: skip
    for _, phase in PHASES:
        with_orders, without = full["phases_s"].get(phase), empty["phases_s"].get(phase)
        if with_orders is not None or without is not None:
            rows.append((f"  {phase} (s)", f"{with_orders or 0:.2f} / {without or 0:.2f}"))
    rows.append(("the database work of a start, without Ray:", ""))
    rows += [(f"  {name} (s)", f"{took:.2f}") for name, took in full["startup_reads_s"].items()]
    rows += [
        ("orders / live / fills / events", f"{full['orders']:,} / {full['live_orders']} / {full['fills']:,}"
         f" / {full['events']:,} over {result['days']} days"),
        ("positions after the restart", str(full["positions_after"])),
        ("writing them (s, not part of the figure)", f"{full['write_s']:.1f}"),
    ]  # fmt: skip
    report.print_rows(f"Recovery after kill -9, median of {result['restarts_each']} restarts each", rows, console)
