"""The FIFO ledger's apply rate, and what one GetPortfolio over 100 accounts × 200 positions costs.

Both run in this process, without Ray or PostgreSQL: the ledger is pure, and the portfolio is built by the real
Gateway over a real Ledger, with stand-ins for the actor handles that do what the actors would (see
`bench_portfolio` for what that leaves out).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import pickle
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any

from ray import cloudpickle
from rich.console import Console

from engine.api.gateway import AccountHandle, Gateway
from engine.api.portfolio_message import PortfolioMessages
from engine.brokers.base import Funds, Holding, Quote
from engine.config import AccountSettings
from engine.domain import Exchange, Fill, InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus
from engine.ledger import Ledger, PositionState
from engine.security.principal import Principal
from engine.security.tokens import Role
from tests.bench import report

APPLY_TARGET = 500_000  # fills per second
PORTFOLIO_TARGET_MS = 10.0  # p99
_SESSION = datetime(2026, 11, 20, 3, 45, tzinfo=UTC)  # 09:15 IST
_SESSION_SECONDS = 6.25 * 3600
_SIDES = (Side.BUY, Side.SELL)
_PRODUCTS = (Product.MIS, Product.CNC)


def _paise(paise: int) -> Decimal:
    """A price with exactly two decimals, as brokers send them."""
    return Decimal(paise).scaleb(-2)


def make_fills(count: int, accounts: int, instruments: int, seed: int = 9) -> list[Fill]:
    """Fills as an exchange reports them through one trading day.

    Orders of 1 to 500 units go to a random account, instrument (NSE), product (MIS or CNC) and side, each filled
    in one to four parts in a row at prices in 5-paise ticks that drift around the instrument's own level; times
    and numeric trade ids rise. Random sides make positions grow, close in part, go flat and flip. Each fill has
    its own price and time objects, as fills read from the database do, and shares its InstrumentId, as the
    store's decoding shares one per instrument.
    """
    rng = random.Random(seed)
    names = [f"acct{i:03d}" for i in range(accounts)]
    listed = [InstrumentId(Exchange.NSE, f"SYM{i:04d}") for i in range(instruments)]
    ticks = [rng.randint(1_000, 100_000) for _ in listed]  # ₹50 to ₹5,000 in 5-paise ticks
    step = _SESSION_SECONDS * 1_000_000 // count  # microseconds between fills
    fills: list[Fill] = []
    while len(fills) < count:
        account, product, side = rng.choice(names), rng.choice(_PRODUCTS), rng.choice(_SIDES)
        i = rng.randrange(instruments)
        quantity = rng.randint(1, 500)
        parts = min(rng.randint(1, 4), quantity, count - len(fills))
        cuts = [0, *sorted(rng.sample(range(1, quantity), parts - 1)), quantity]
        order_id = f"ORD{len(fills):09d}"
        for low, high in itertools.pairwise(cuts):
            ticks[i] = max(1, ticks[i] + rng.randint(-2, 2))
            n = len(fills)
            fills.append(
                Fill(
                    account=account,
                    trade_id=str(10_000_000 + n),
                    order_id=order_id,
                    instrument=listed[i],
                    side=side,
                    product=product,
                    quantity=high - low,
                    price=_paise(ticks[i] * 5),
                    filled_at=_SESSION + timedelta(microseconds=n * step),
                )
            )
    return fills


def bench_apply(count: int, accounts: int, instruments: int, rounds: int) -> dict[str, Any]:
    """`rounds` fresh ledgers each apply the same `count` fills with one `apply_many`; wall and CPU time per round.

    The fills are built first and frozen out of the garbage collector's sight (`gc.freeze`): the daemon reads
    them 10,000 at a time, so a million live Fill objects would make every collection slower than it is there.
    The ledger's own objects stay in the collector's view, as they are in the daemon.
    """
    fills = make_fills(count, accounts, instruments)
    gc.collect()
    gc.freeze()
    walls, cpus, books = [], [], 0
    try:
        for _ in range(rounds):
            ledger = Ledger()
            wall, cpu = time.perf_counter(), time.process_time()
            applied = ledger.apply_many(fills)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            assert applied == count
            books = len(ledger.positions())
            del ledger
            gc.collect()
    finally:
        gc.unfreeze()
    rates = [count / w for w in walls]
    median = statistics.median(rates)
    return {
        "fills": count,
        "accounts": accounts,
        "instruments": instruments,
        "books": books,
        "rounds": rounds,
        "rates_per_s": rates,
        "cpu_rates_per_s": [count / c for c in cpus],
        "median_rate_per_s": median,
        "best_rate_per_s": max(rates),
        "target_per_s": APPLY_TARGET,
        "met": median >= APPLY_TARGET,
    }


class _Remote:
    """An actor method's stand-in: `.remote(...)` returns what the method does (an awaitable, as an ObjectRef is
    one, or nothing for a call whose answer is not awaited)."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        return self._method(*args)


_LEDGER_STAGE = "LedgerActor changes()"
_PICKLE_STAGE = "Ray pickling of the answer (out and back)"
_BUILD_STAGE = "Gateway.portfolio (copy, marks, consolidation)"
_EPOCH = "bench"


class _LedgerHandle:
    """The LedgerActor's changes() on a real Ledger, its answer passed through the pickling Ray gives a return
    value (cloudpickle, protocol 5, out and back), each part timed."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.changes = _Remote(self._changes)
        self.timings: dict[str, list[float]] = {_LEDGER_STAGE: [], _PICKLE_STAGE: []}
        self.pickled_bytes: list[int] = []

    async def _changes(self, epoch: str, since: int) -> tuple[str, int, list[PositionState]]:
        started = time.perf_counter()
        answer = (_EPOCH, *self._ledger.changes(since if epoch == _EPOCH else 0))
        built = time.perf_counter()
        blob = cloudpickle.dumps(answer, protocol=5)
        back = pickle.loads(blob)
        self.timings[_LEDGER_STAGE].append(built - started)
        self.timings[_PICKLE_STAGE].append(time.perf_counter() - built)
        self.pickled_bytes.append(len(blob))
        return back


def _fill(n: int, state: PositionState, side: Side, quantity: int, paise: int, at: datetime) -> Fill:
    return Fill(state.account, str(n), f"O{n}", InstrumentId(Exchange.NSE, state.instrument.symbol), side,
                state.product, quantity, _paise(paise), at)  # fmt: skip


def _book(accounts: int, positions: int, instruments: int, seed: int = 5) -> tuple[Ledger, list[AccountSnapshot]]:
    """Each account holds `positions` books (one per instrument, MIS or CNC), most open and some closed in part
    or flat, and a synced snapshot: funds, ten holdings and its broker's marks for every instrument."""
    rng = random.Random(seed)
    symbols = [f"SYM{i:04d}" for i in range(instruments)]
    names = [f"acct{i:03d}" for i in range(accounts)]
    fills = []
    for name in names:
        for symbol in rng.sample(symbols, positions):
            product, price = rng.choice(_PRODUCTS), rng.randint(5_000, 500_000)
            for side, quantity in ((Side.BUY, 100), (Side.SELL, rng.choice((0, 40, 100)))):
                if quantity:
                    n = len(fills)
                    fills.append(Fill(name, str(n), f"O{n}", InstrumentId(Exchange.NSE, symbol), side, product,
                                      quantity, _paise(price + rng.randint(-500, 500)),
                                      _SESSION + timedelta(seconds=n)))  # fmt: skip
    ledger = Ledger()
    ledger.apply_many(fills)
    synced = datetime.now(UTC) - timedelta(seconds=5)  # the market-data quotes are newer
    funds = Funds(Decimal("1000000.00"), Decimal("250000.00"), Decimal("1250000.00"))
    holdings = tuple(Holding(InstrumentId(Exchange.NSE, s), 10, _paise(150_025), _paise(151_000)) for s in symbols[:10])
    snapshots = [
        AccountSnapshot(name, "paper", AccountStatus.ACTIVE, last_sync=synced, funds=funds, holdings=holdings,
                        marks={InstrumentId(Exchange.NSE, s): _paise(rng.randint(5_000, 500_000)) for s in symbols})
        for name in names
    ]  # fmt: skip
    return ledger, snapshots


def _batches(ledger: Ledger, calls: int, size: int, seed: int = 6) -> list[list[Fill]]:
    """Fills the ledger takes between two calls: `size` books (a batch order over that many accounts) trade
    once more, after everything before."""
    rng = random.Random(seed)
    states = ledger.positions()
    later = _SESSION + timedelta(days=1)
    return [
        [_fill(10_000_000 + call * size + i, state, rng.choice(_SIDES), rng.randint(1, 50), rng.randint(5_000, 500_000),
               later + timedelta(seconds=call)) for i, state in enumerate(rng.sample(states, size))]
        for call in range(calls + 1)
    ]  # fmt: skip


async def _gateway(ledger: Ledger, snapshots: list[AccountSnapshot]) -> Gateway:
    """The real Gateway, its account actors answering with the snapshots and market data quoting every
    instrument, newer than the snapshots' marks."""
    by_name = {s.account: s for s in snapshots}

    async def snapshot_of(name: str) -> AccountSnapshot:
        return by_name[name]

    async def quote_now(wanted: list[InstrumentId], _timeout: float) -> list[Quote]:
        now = datetime.now(UTC)
        return [Quote(i, _paise(12_345), _paise(12_340), _paise(12_350), now) for i in wanted]

    handles = [
        AccountHandle(AccountSettings(id=name), SimpleNamespace(snapshot=_Remote(partial(snapshot_of, name))))
        for name in by_name
    ]
    market = SimpleNamespace(subscribe=_Remote(lambda *_: None), quote_now=_Remote(quote_now))
    gateway = Gateway(handles, None, _LedgerHandle(ledger), None, None,  # type: ignore[arg-type]
                      market_data=market, quote_timeout=1.0, quote_max_age=60.0)  # fmt: skip
    await gateway.refresh_snapshots()
    await gateway.quotes.get(list({i for s in snapshots for i in s.marks}))
    return gateway


async def _portfolio_calls(accounts: int, positions: int, calls: int, churn: int) -> dict[str, Any]:
    ledger, snapshots = _book(accounts, positions, instruments=positions * 3 // 2)
    batches = _batches(ledger, calls, min(churn, accounts * positions))
    gateway = await _gateway(ledger, snapshots)
    handle: _LedgerHandle = gateway.ledger
    admin = Principal("bench", Role.ADMIN, "t0", frozenset())
    names = list(gateway.accounts)
    messages = PortfolioMessages()
    draw_stage = "PortfolioMessage.draw (the changed rows)"
    stages: dict[str, list[float]] = {_BUILD_STAGE: [], draw_stage: [], "SerializeToString": []}
    totals: list[float] = []
    cpus: list[float] = []  # this process's CPU time: what the machine's other load does not inflate
    size = 0
    for batch in batches:  # the first call, a full copy of the ledger, is left out of the figures
        ledger.apply_many(batch)
        cpu = time.process_time()
        started = time.perf_counter()
        view = await gateway.portfolio(names, admin)
        built = time.perf_counter()
        kept = messages.of(view)
        kept.draw(view)
        message = kept.lend(datetime.now(UTC))
        drawn = time.perf_counter()
        size = len(message.SerializeToString())
        done = time.perf_counter()
        kept.returned(message)  # as the call's end does
        stages[_BUILD_STAGE].append(built - started - handle.timings[_LEDGER_STAGE][-1]
                                    - handle.timings[_PICKLE_STAGE][-1])  # fmt: skip
        stages[draw_stage].append(drawn - built)
        stages["SerializeToString"].append(done - drawn)
        totals.append(done - started)
        cpus.append(time.process_time() - cpu)
    overlapped = []  # a read while the previous answer is still being sent draws on a copy of the message
    for _ in range(10):
        kept.lend(datetime.now(UTC))
        started = time.perf_counter()
        kept.draw(view)
        overlapped.append(time.perf_counter() - started)
    stages = {**handle.timings, **stages}
    return {
        "accounts": accounts,
        "positions_per_account": positions,
        "positions": len(ledger.positions()),
        "calls": calls,
        "fills_between_calls": len(batches[0]),
        "response_bytes": size,
        "first_call_ms": totals[0] * 1000,
        "first_call_pickled_bytes": handle.pickled_bytes[0],
        "pickled_bytes": statistics.median(handle.pickled_bytes[1:]),
        **report.latency_ms(totals[1:]),
        "cpu_ms": report.latency_ms(cpus[1:]),
        "stages_ms": {name: report.latency_ms(times[1:]) for name, times in stages.items()},
        "overlapped_draw_ms": report.latency_ms(overlapped),
        "target_p99_ms": PORTFOLIO_TARGET_MS,
    }


def bench_portfolio(accounts: int, positions: int, calls: int, churn: int = 50) -> dict[str, Any]:
    """GetPortfolio's work for every account, timed `calls` times after a first call, with `churn` fills applied
    to the ledger before each: the LedgerActor's changes() (what changed since the gateway's copy), Ray's pickling
    of its answer both ways, Gateway.portfolio (the copy, the kept marked rows and consolidated rows brought up to
    date with what changed), PortfolioMessage.draw (the kept message's changed rows redrawn) and the serialization
    gRPC does. Then, apart, a read that comes while the previous answer is still being sent, which draws on a copy.

    Left out: the token check, the actor sync's PostgreSQL read of new fills (one indexed query), moving the
    pickled bytes between processes, and gRPC itself.
    """
    figures = asyncio.run(_portfolio_calls(accounts, positions, calls, churn))
    figures["met"] = figures["p99_ms"] <= PORTFOLIO_TARGET_MS
    return figures


def print_apply(result: dict[str, Any], console: Console | None = None) -> None:
    rates = ", ".join(f"{r:,.0f}" for r in result["rates_per_s"])
    report.print_rows(
        f"Ledger: FIFO apply of {result['fills']:,} fills, {result['accounts']} accounts × {result['instruments']}"
        f" instruments, {result['rounds']} rounds",
        [
            ("apply rate, median (fills/s)", f"{result['median_rate_per_s']:,.0f} "
             + report.against(f"≥ {result['target_per_s']:,}", result["met"])),
            ("apply rate, best (fills/s)", f"{result['best_rate_per_s']:,.0f}"),
            ("apply rate per round (fills/s)", rates),
            ("on CPU time, median (fills/s)", f"{statistics.median(result['cpu_rates_per_s']):,.0f}"),
            ("position books", f"{result['books']:,}"),
        ],
        console,
    )  # fmt: skip


def print_portfolio(result: dict[str, Any], console: Console | None = None) -> None:
    rows = [
        ("p99 (ms)", f"{result['p99_ms']:.1f} " + report.against(f"≤ {result['target_p99_ms']:g} ms", result["met"])),
        ("p50 (ms)", f"{result['p50_ms']:.1f}"),
        ("max (ms)", f"{result['max_ms']:.1f}"),
        ("on CPU time, p50 / p99 (ms)", f"{result['cpu_ms']['p50_ms']:.1f} / {result['cpu_ms']['p99_ms']:.1f}"),
    ]
    rows += [(f"  {name}, p50 / p99 (ms)", f"{t['p50_ms']:.1f} / {t['p99_ms']:.1f}")
             for name, t in result["stages_ms"].items()]  # fmt: skip
    overlapped = result["overlapped_draw_ms"]
    rows += [
        ("a read overlapping one being sent: draw on a copy, p50 (ms)", f"{overlapped['p50_ms']:.1f}"),
        ("response size (bytes)", f"{result['response_bytes']:,}"),
        ("fills applied before each call (as many books changed)", f"{result['fills_between_calls']}"),
        ("answer pickled by Ray, median (bytes)", f"{result['pickled_bytes']:,.0f}"),
        ("first call: a full copy of the ledger (ms)", f"{result['first_call_ms']:.1f}"),
        ("first call's answer pickled (bytes)", f"{result['first_call_pickled_bytes']:,}"),
    ]
    report.print_rows(
        f"GetPortfolio's work in-process: {result['accounts']} accounts × {result['positions_per_account']}"
        f" positions ({result['positions']:,}), {result['calls']} calls",
        rows,
        console,
    )
