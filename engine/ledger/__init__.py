"""Pure FIFO PnL ledger: fills in, position snapshots out; no I/O so it runs anywhere."""

from engine.ledger.book import ConsolidatedPosition, Ledger, MarkedPosition
from engine.ledger.day import day_pnl
from engine.ledger.fifo import Lot, PositionBook, PositionState
from engine.ledger.replica import LedgerReplica

__all__ = [
    "ConsolidatedPosition",
    "Ledger",
    "LedgerReplica",
    "Lot",
    "MarkedPosition",
    "PositionBook",
    "PositionState",
    "day_pnl",
]
