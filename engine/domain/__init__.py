"""Value types shared by every layer; no I/O here."""

from engine.domain.instruments import Instrument, InstrumentId
from engine.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    IllegalTransition,
    Order,
    OrderEvent,
    OrderRequest,
    check_transition,
)
from engine.domain.types import Exchange, OrderStatus, OrderType, Product, Side

__all__ = [
    "TERMINAL_STATUSES",
    "Exchange",
    "Fill",
    "IllegalTransition",
    "Instrument",
    "InstrumentId",
    "Order",
    "OrderEvent",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Product",
    "Side",
    "check_transition",
]
