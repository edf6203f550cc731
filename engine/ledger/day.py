"""Today's PnL of an account from today's trades, the way a daily loss limit reads it.

Each instrument's trades today are marked to market: what was sold less what was bought, plus the day's
net units at the latest price. That is realised and unrealised PnL of the day's trading together, and a
delivery sell out of older holdings counts from its sell price, as Kite's day positions show it. Charges
are not included, nor the overnight move of positions and holdings carried in from earlier days.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from engine.domain.instruments import InstrumentId
from engine.domain.sessions import IST
from engine.domain.types import Side


class Trade(Protocol):
    """What a day's PnL needs of a trade; a broker's trade and a stored fill both fit."""

    @property
    def instrument(self) -> InstrumentId: ...
    @property
    def side(self) -> Side: ...
    @property
    def quantity(self) -> int: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def filled_at(self) -> datetime: ...


def day_pnl(trades: Iterable[Trade], marks: Mapping[InstrumentId, Decimal], day: date) -> Decimal:
    """PnL of the trades filled on `day` (IST). An instrument without a mark is marked at its last trade."""
    cash: dict[InstrumentId, Decimal] = {}
    units: dict[InstrumentId, int] = {}
    last_trade: dict[InstrumentId, tuple[datetime, Decimal]] = {}
    for trade in trades:
        if trade.filled_at.astimezone(IST).date() != day:
            continue
        sign = trade.side.sign
        cash[trade.instrument] = cash.get(trade.instrument, Decimal(0)) - sign * trade.quantity * trade.price
        units[trade.instrument] = units.get(trade.instrument, 0) + sign * trade.quantity
        seen = last_trade.get(trade.instrument)
        if seen is None or trade.filled_at >= seen[0]:
            last_trade[trade.instrument] = (trade.filled_at, trade.price)
    return sum(
        (flow + units[i] * marks.get(i, last_trade[i][1]) for i, flow in cash.items()),
        Decimal(0),
    )
