"""The instrument master: every tradeable instrument and the static facts orders are checked against.

Loaded from Kite's instrument CSV because that dump is the de-facto format Indian brokers publish; the
simulator ships a small one so tests and paper accounts need no network.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from importlib import resources

from engine.domain import Exchange, Instrument, InstrumentId

# Per-order freeze quantity of index derivatives (NSE, Nov 2025); larger orders must be sliced.
INDEX_FREEZE_QUANTITY: dict[str, int] = {
    "NIFTY": 1800,
    "BANKNIFTY": 600,
    "FINNIFTY": 1800,
    "MIDCPNIFTY": 2800,
}
_DERIVATIVE_EXCHANGES = frozenset({Exchange.NFO, Exchange.BFO})
_DERIVATIVE_TYPES = frozenset({"FUT", "CE", "PE"})
_REQUIRED_COLUMNS = frozenset(
    {"instrument_token", "tradingsymbol", "name", "last_price", "tick_size", "lot_size", "exchange"}
)
_UNDERLYING_PREFIX = re.compile(r"[A-Z&\-]+")


class InstrumentMaster:
    """Immutable lookup of instruments by `InstrumentId`."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_id: dict[InstrumentId, Instrument] = {inst.id: inst for inst in instruments}

    @classmethod
    def from_kite_csv(cls, text: str) -> InstrumentMaster:
        """Parse a Kite instrument dump, skipping rows that cannot be traded (indices, bad symbols)."""
        reader = csv.DictReader(io.StringIO(text))
        missing = _REQUIRED_COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"instrument CSV lacks columns: {', '.join(sorted(missing))}")
        return cls(inst for row in reader if (inst := _parse_row(row)) is not None)

    @classmethod
    def default(cls) -> InstrumentMaster:
        """The small master packaged with the simulator (`engine/sim/data/instruments.csv`)."""
        text = resources.files("engine.sim.data").joinpath("instruments.csv").read_text(encoding="utf-8")
        return cls.from_kite_csv(text)

    def get(self, instrument_id: InstrumentId) -> Instrument | None:
        return self._by_id.get(instrument_id)

    def __contains__(self, item: object) -> bool:
        return item in self._by_id

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


def _parse_row(row: dict[str, str]) -> Instrument | None:
    try:
        exchange = Exchange(row["exchange"].strip().upper())
        instrument_id = InstrumentId.parse(f"{exchange}:{row['tradingsymbol'].strip()}")
        tick_size = Decimal(row["tick_size"].strip())
        lot_size = int(Decimal(row["lot_size"].strip()))
        last_price = Decimal(row["last_price"].strip() or "0")
        token = int(row["instrument_token"].strip() or "0")
        exchange_token = int((row.get("exchange_token") or "0").strip() or "0")
    except (ValueError, InvalidOperation, KeyError, AttributeError):
        return None
    if tick_size <= 0 or lot_size <= 0:
        return None  # indices and other non-tradeable rows
    return Instrument(
        id=instrument_id,
        name=(row.get("name") or "").strip(),
        tick_size=tick_size,
        lot_size=lot_size,
        last_price=last_price,
        instrument_token=token,
        freeze_quantity=_freeze_quantity(instrument_id, row),
        exchange_token=exchange_token,
    )


def _freeze_quantity(instrument_id: InstrumentId, row: dict[str, str]) -> int:
    if instrument_id.exchange not in _DERIVATIVE_EXCHANGES:
        return 0
    if (row.get("instrument_type") or "").strip().upper() not in _DERIVATIVE_TYPES:
        return 0
    underlying = (row.get("name") or "").strip().upper()
    if not underlying:  # Kite leaves `name` empty on some option rows
        match = _UNDERLYING_PREFIX.match(instrument_id.symbol)
        underlying = match.group(0) if match else ""
    return INDEX_FREEZE_QUANTITY.get(underlying, 0)
