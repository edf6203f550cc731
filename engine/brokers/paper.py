"""Paper broker: the BrokerAdapter interface over an in-process SimExchange, persisted to a JSON file.

Lets the daemon run an account end to end without a real broker, and find the same orders, fills and
cash after a restart. A full snapshot is written now and then; in between, each change appends only
its delta (live orders, orders that just finished, new trades, the small portfolio figures) to a
journal, so an order costs the same to persist however long the account's history is. Snapshot and
journal share a generation number, so a crash during compaction never replays a stale journal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.brokers.base import (
    BrokerOrder,
    BrokerPosition,
    BrokerTrade,
    Funds,
    Holding,
    ModifyRequest,
    PlaceRequest,
    Quote,
)
from engine.brokers.pacing import Window
from engine.domain import InstrumentId
from engine.domain.sessions import TradingSessions
from engine.files import write_atomically
from engine.instrument_master import InstrumentMaster
from engine.sim.exchange import SimExchange, utc_now
from engine.sim.prices import PricePath

_NO_HOLDINGS: Mapping[InstrumentId, tuple[int, Decimal]] = MappingProxyType({})


class PaperBroker:
    """A BrokerAdapter whose broker is a SimExchange; every call is synchronous underneath."""

    COMPACT_AFTER = 500  # journal entries between full snapshots

    def __init__(
        self, name: str, exchange: SimExchange, state_path: Path | None = None, latency_ms: float = 0
    ) -> None:
        """`latency_ms`: how long place, modify and cancel wait before acting, imitating a broker's round trip."""
        self.name = name
        self.latency = latency_ms / 1000
        self.order_limits: tuple[Window, ...] = ()  # no broker behind it; the account's own rate still applies
        self.exchange = exchange
        self.state_path = state_path
        self._saved_revision: int | None = None
        self._generation = 0
        self._journal_entries = 0
        self._settled: set[str] = set()
        self._trades_saved = 0

    @classmethod
    def open(
        cls,
        name: str,
        instruments: InstrumentMaster,
        prices: PricePath,
        *,
        state_path: Path | None,
        opening_cash: Decimal,
        holdings: Mapping[InstrumentId, tuple[int, Decimal]] = _NO_HOLDINGS,
        half_spread_ticks: int = 1,
        depth_per_second: int = 5000,
        price_band_percent: Decimal = Decimal(0),
        sessions: TradingSessions | None = None,
        clock: Callable[[], datetime] | None = None,
        latency_ms: float = 0,
    ) -> PaperBroker:
        """Resume the account saved at `state_path` if that file exists, else start it fresh.

        On resume the saved state wins: opening_cash, holdings, spread, depth and band are used only
        for a fresh start.
        """
        clock = clock or utc_now
        if state_path is not None and state_path.exists():
            data = read_state(state_path)
            exchange = SimExchange.from_json(data, instruments, prices, sessions=sessions, clock=clock)
            broker = cls(name, exchange, state_path, latency_ms)
            broker._generation = int(data.get("generation", 0))
            broker._compact()
            return broker
        exchange = SimExchange(
            instruments,
            prices,
            opening_cash=opening_cash,
            holdings=holdings,
            half_spread_ticks=half_spread_ticks,
            depth_per_second=depth_per_second,
            price_band_percent=price_band_percent,
            sessions=sessions,
            clock=clock,
        )
        broker = cls(name, exchange, state_path, latency_ms)
        broker._compact()
        return broker

    async def _round_trip(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def place(self, request: PlaceRequest) -> str:
        await self._round_trip()
        try:
            return self.exchange.place(request)
        finally:
            self.save_if_changed()

    async def modify(self, broker_order_id: str, change: ModifyRequest) -> None:
        await self._round_trip()
        try:
            self.exchange.modify(broker_order_id, change)
        finally:
            self.save_if_changed()

    async def cancel(self, broker_order_id: str) -> None:
        await self._round_trip()
        try:
            self.exchange.cancel(broker_order_id)
        finally:
            self.save_if_changed()

    async def orders(self) -> list[BrokerOrder]:
        result = self.exchange.orders()
        self.save_if_changed()
        return result

    async def trades(self) -> list[BrokerTrade]:
        result = self.exchange.trades()
        self.save_if_changed()
        return result

    async def positions(self) -> list[BrokerPosition]:
        result = self.exchange.positions()
        self.save_if_changed()
        return result

    async def holdings(self) -> list[Holding]:
        result = self.exchange.holdings()
        self.save_if_changed()
        return result

    async def funds(self) -> Funds:
        result = self.exchange.funds()
        self.save_if_changed()
        return result

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        """Quotes for the known instruments; unknown ones are left out, as Kite's quote call does."""
        known = [i for i in instruments if i in self.exchange.instruments]
        result = {i: self.exchange.quote(i) for i in known}
        self.save_if_changed()
        return result

    async def close(self) -> None:
        self._compact()

    def save_if_changed(self) -> None:
        """Persist what changed since the last save; for callers that drive `exchange` directly."""
        if self.exchange.revision != self._saved_revision:
            self._save()

    def _save(self) -> None:
        if self.state_path is None or self._journal_entries >= self.COMPACT_AFTER:
            self._compact()
            return
        revision = self.exchange.revision
        delta = self.exchange.to_json(settled=self._settled, trades_from=self._trades_saved)
        with _journal_path(self.state_path, self._generation).open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(delta, separators=(",", ":")) + "\n")
        self._mark_saved(revision)
        self._journal_entries += 1

    def _compact(self) -> None:
        """Write a full snapshot of a new generation, then drop the old generation's journal."""
        if self.state_path is None:
            return
        revision = self.exchange.revision
        old = _journal_path(self.state_path, self._generation)
        self._generation += 1
        snapshot = {**self.exchange.to_json(), "generation": self._generation}
        write_atomically(self.state_path, json.dumps(snapshot, separators=(",", ":")))
        old.unlink(missing_ok=True)
        self._mark_saved(revision)
        self._journal_entries = 0

    def _mark_saved(self, revision: int) -> None:
        self._saved_revision = revision
        self._settled = self.exchange.finished_order_ids()
        self._trades_saved = self.exchange.trade_count


def read_state(state_path: Path) -> dict[str, Any]:
    """The account state a restart would load now, as JSON data (for inspection and tests)."""
    snapshot = json.loads(state_path.read_text(encoding="utf-8"))
    return _replay(snapshot, _journal_path(state_path, int(snapshot.get("generation", 0))))


def _journal_path(state_path: Path, generation: int) -> Path:
    return state_path.with_name(f"{state_path.name}.journal.{generation}")


def _replay(snapshot: dict[str, Any], journal: Path) -> dict[str, Any]:
    """The snapshot with every journal delta applied in order: orders upserted, trades appended."""
    orders = {o["order_id"]: o for o in snapshot["orders"]}
    trades = list(snapshot["trades"])
    state = dict(snapshot)
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                delta = json.loads(line)
            except json.JSONDecodeError:
                break  # a write torn by a crash: the deltas before it are the state
            orders.update((o["order_id"], o) for o in delta["orders"])
            del trades[delta["trades_from"] :]
            trades.extend(delta["trades"])
            state.update({k: v for k, v in delta.items() if k not in ("orders", "trades", "trades_from")})
    state["orders"] = list(orders.values())
    state["trades"] = trades
    state["trades_from"] = 0
    return state
