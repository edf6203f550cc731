"""Paper broker: the BrokerAdapter interface over an in-process SimExchange, persisted to a JSON file.

Lets the daemon run an account end to end without a real broker. State is written atomically after
every change so a restarted daemon finds the same orders, fills and cash it left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

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
from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from engine.sim.exchange import SimExchange, utc_now
from engine.sim.prices import PricePath

_NO_HOLDINGS: Mapping[InstrumentId, tuple[int, Decimal]] = MappingProxyType({})


class PaperBroker:
    """A BrokerAdapter whose broker is a SimExchange; every call is synchronous underneath."""

    def __init__(self, name: str, exchange: SimExchange, state_path: Path | None = None) -> None:
        self.name = name
        self.exchange = exchange
        self.state_path = state_path
        self._saved_revision: int | None = None

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
        clock: Callable[[], datetime] | None = None,
    ) -> PaperBroker:
        """Resume the account saved at `state_path` if that file exists, else start it fresh.

        On resume the saved state wins: opening_cash, holdings, spread and depth are used only for
        a fresh start.
        """
        clock = clock or utc_now
        if state_path is not None and state_path.exists():
            data = json.loads(state_path.read_text(encoding="utf-8"))
            exchange = SimExchange.from_json(data, instruments, prices, clock=clock)
            broker = cls(name, exchange, state_path)
            broker._saved_revision = exchange.revision
            return broker
        exchange = SimExchange(
            instruments,
            prices,
            opening_cash=opening_cash,
            holdings=holdings,
            half_spread_ticks=half_spread_ticks,
            depth_per_second=depth_per_second,
            clock=clock,
        )
        broker = cls(name, exchange, state_path)
        broker._save()
        return broker

    async def place(self, request: PlaceRequest) -> str:
        try:
            return self.exchange.place(request)
        finally:
            self._save_if_changed()

    async def modify(self, broker_order_id: str, change: ModifyRequest) -> None:
        try:
            self.exchange.modify(broker_order_id, change)
        finally:
            self._save_if_changed()

    async def cancel(self, broker_order_id: str) -> None:
        try:
            self.exchange.cancel(broker_order_id)
        finally:
            self._save_if_changed()

    async def orders(self) -> list[BrokerOrder]:
        result = self.exchange.orders()
        self._save_if_changed()
        return result

    async def trades(self) -> list[BrokerTrade]:
        result = self.exchange.trades()
        self._save_if_changed()
        return result

    async def positions(self) -> list[BrokerPosition]:
        result = self.exchange.positions()
        self._save_if_changed()
        return result

    async def holdings(self) -> list[Holding]:
        result = self.exchange.holdings()
        self._save_if_changed()
        return result

    async def funds(self) -> Funds:
        result = self.exchange.funds()
        self._save_if_changed()
        return result

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        """Quotes for the known instruments; unknown ones are left out, as Kite's quote call does."""
        known = [i for i in instruments if i in self.exchange.instruments]
        result = {i: self.exchange.quote(i) for i in known}
        self._save_if_changed()
        return result

    async def close(self) -> None:
        self._save()

    def _save_if_changed(self) -> None:
        if self.exchange.revision != self._saved_revision:
            self._save()

    def _save(self) -> None:
        if self.state_path is None:
            return
        revision = self.exchange.revision
        _write_atomically(self.state_path, json.dumps(self.exchange.to_json(), indent=1))
        self._saved_revision = revision


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temp file in the same directory, fsync, then rename: a crash leaves old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
