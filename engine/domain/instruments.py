"""Instrument identity (`NSE:INFY`) and the static facts an order is checked against."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from engine.domain.types import Exchange

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9&\-_.]{0,39}$")


@dataclass(frozen=True, slots=True, order=True)
class InstrumentId:
    exchange: Exchange
    symbol: str
    # Hashed once: an InstrumentId keys the portfolio's and the market data's dicts, and a dataclass's own hash
    # builds a tuple and hashes it in Python on every lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.exchange, self.symbol)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[InstrumentId], tuple[Exchange, str]]:
        """Pickled as its fields, so the hash is made again where it is read: string hashes differ by process."""
        return (InstrumentId, (self.exchange, self.symbol))

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Parse `EXCHANGE:SYMBOL`; raises ValueError with a message fit for an API error."""
        exchange, sep, symbol = text.strip().upper().partition(":")
        if not sep:
            raise ValueError(f"expected EXCHANGE:SYMBOL (e.g. NSE:INFY), got {text!r}")
        try:
            exch = Exchange(exchange)
        except ValueError:
            raise ValueError(f"unknown exchange {exchange!r} in {text!r}") from None
        if not _SYMBOL.match(symbol):
            raise ValueError(f"invalid trading symbol {symbol!r} in {text!r}")
        return cls(exch, symbol)

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of an instrument master: what an order for this instrument must respect."""

    id: InstrumentId
    name: str
    tick_size: Decimal
    lot_size: int
    last_price: Decimal
    instrument_token: int = 0
    freeze_quantity: int = 0
    exchange_token: int = 0  # the exchange's contract id, the same at every broker

    def on_tick(self, price: Decimal) -> bool:
        return price % self.tick_size == 0
