"""Statutory and brokerage charges of one executed order, as a contract note would show them.

Routing needs the fee of an order before placing it (fee-aware routing picks the cheaper account), the
ledger needs it after a fill to turn gross PnL into net, and the simulator's Kite `POST /charges/orders`
endpoint returns it as a virtual contract note. Pure arithmetic on Decimal, so all three agree to the paisa.
Rates are the NSE equity and F&O rates of April 2026 (shared/specs/brokers.md); brokerage is data in
`BROKERAGE`, so another broker is a new row rather than new code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from types import MappingProxyType

from engine.domain.instruments import InstrumentId
from engine.domain.types import Exchange, Product, Side

_PAISA = Decimal("0.01")
_ZERO = Decimal(0)
_TWENTY = Decimal(20)
_SEBI_RATE = Decimal(10) / Decimal(10_000_000)  # ₹10 per crore of turnover
_GST_RATE = Decimal("0.18")
_CASH_EXCHANGES = frozenset({Exchange.NSE, Exchange.BSE})
_OPTION_SYMBOL = re.compile(r"\d(CE|PE)$")


class InstrumentKind(StrEnum):
    EQUITY = "EQUITY"
    FUTURE = "FUTURE"
    OPTION = "OPTION"


class Segment(StrEnum):
    """The column of the charges table an order falls in."""

    DELIVERY = "DELIVERY"
    INTRADAY = "INTRADAY"
    FUTURES = "FUTURES"
    OPTIONS = "OPTIONS"


def instrument_kind(instrument: InstrumentId) -> InstrumentKind:
    """Kind from exchange and symbol; the exchange is checked first because cash symbols like BAJFINANCE end in CE."""
    if instrument.exchange in _CASH_EXCHANGES:
        return InstrumentKind.EQUITY
    if instrument.symbol.endswith("FUT"):
        return InstrumentKind.FUTURE
    if _OPTION_SYMBOL.search(instrument.symbol):
        return InstrumentKind.OPTION
    raise ValueError(f"cannot tell future from option for {instrument}: symbol ends in neither FUT nor <strike>CE/PE")


def segment(kind: InstrumentKind, product: Product) -> Segment:
    """Charges column of an order; raises ValueError for products the exchange would reject (CNC F&O, NRML cash)."""
    if kind is InstrumentKind.EQUITY:
        if product is Product.CNC:
            return Segment.DELIVERY
        if product is Product.MIS:
            return Segment.INTRADAY
    elif product is not Product.CNC:
        return Segment.FUTURES if kind is InstrumentKind.FUTURE else Segment.OPTIONS
    raise ValueError(f"product {product} is not valid for {kind.lower()}")


@dataclass(frozen=True, slots=True)
class BrokerageRule:
    """Brokerage of one order: the lesser of `rate` × turnover and `max_fee`, or `max_fee` flat when `rate` is None."""

    max_fee: Decimal
    rate: Decimal | None = None

    def fee(self, turnover: Decimal) -> Decimal:
        return self.max_fee if self.rate is None else min(turnover * self.rate, self.max_fee)


BrokerageSchedule = Mapping[Segment, BrokerageRule]


def _schedule(
    delivery: BrokerageRule, intraday: BrokerageRule, futures: BrokerageRule, options: BrokerageRule
) -> BrokerageSchedule:
    return MappingProxyType(
        {Segment.DELIVERY: delivery, Segment.INTRADAY: intraday, Segment.FUTURES: futures, Segment.OPTIONS: options}
    )


_FREE = BrokerageRule(_ZERO)
_FLAT_20 = BrokerageRule(_TWENTY)
_20_OR_0_03_PCT = BrokerageRule(_TWENTY, Decimal("0.0003"))
_20_OR_0_1_PCT = BrokerageRule(_TWENTY, Decimal("0.001"))

BROKERAGE: Mapping[str, BrokerageSchedule] = MappingProxyType(
    {
        "zerodha": _schedule(_FREE, _20_OR_0_03_PCT, _20_OR_0_03_PCT, _FLAT_20),
        "upstox": _schedule(_FLAT_20, _20_OR_0_1_PCT, _20_OR_0_1_PCT, _FLAT_20),
        "angelone": _schedule(_20_OR_0_1_PCT, _20_OR_0_1_PCT, _20_OR_0_1_PCT, _20_OR_0_1_PCT),
    }
)
DEFAULT_BROKER = "zerodha"


def brokerage_schedule(broker: str) -> BrokerageSchedule:
    """Schedule for `broker` (case-insensitive); "paper" and any unlisted name get Zerodha's, never a KeyError."""
    return BROKERAGE.get(broker.strip().lower(), BROKERAGE[DEFAULT_BROKER])


@dataclass(frozen=True, slots=True)
class _Statutory:
    stt_buy: Decimal
    stt_sell: Decimal
    exchange: Decimal
    stamp_buy: Decimal


_STATUTORY: Mapping[Segment, _Statutory] = MappingProxyType(
    {
        Segment.DELIVERY: _Statutory(Decimal("0.001"), Decimal("0.001"), Decimal("0.0000297"), Decimal("0.00015")),
        Segment.INTRADAY: _Statutory(_ZERO, Decimal("0.00025"), Decimal("0.0000297"), Decimal("0.00003")),
        Segment.FUTURES: _Statutory(_ZERO, Decimal("0.0005"), Decimal("0.0000173"), Decimal("0.00002")),
        Segment.OPTIONS: _Statutory(_ZERO, Decimal("0.0015"), Decimal("0.0003503"), Decimal("0.00003")),
    }
)


def _paise(amount: Decimal) -> Decimal:
    return amount.quantize(_PAISA, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Charges:
    """Each component already rounded to paise, so `total` is exactly the sum a contract note prints."""

    brokerage: Decimal
    stt: Decimal
    exchange_turnover: Decimal
    sebi_turnover: Decimal
    stamp_duty: Decimal
    gst: Decimal

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange_turnover + self.sebi_turnover + self.stamp_duty + self.gst

    def to_kite_json(self) -> dict[str, str | float | dict[str, float]]:
        """The `charges` object of Kite's virtual contract note; GST is all IGST, as Kite reports it."""
        gst = float(self.gst)
        return {
            "transaction_tax": float(self.stt),
            "transaction_tax_type": "stt",
            "exchange_turnover_charge": float(self.exchange_turnover),
            "sebi_turnover_charge": float(self.sebi_turnover),
            "brokerage": float(self.brokerage),
            "stamp_duty": float(self.stamp_duty),
            "gst": {"igst": gst, "cgst": 0.0, "sgst": 0.0, "total": gst},
            "total": float(self.total),
        }


def order_charges(
    broker: str, kind: InstrumentKind, product: Product, side: Side, quantity: int, price: Decimal
) -> Charges:
    """Charges of one executed order; `price` is the premium for options.

    STT is rounded to paise, not to the rupee: brokers round STT per scrip on the day's contract note, so
    rupee-rounding each order would misstate a day made of several orders. GST is 18% of the rounded
    brokerage, exchange and SEBI lines, so it matches the lines printed beside it.
    """
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    seg = segment(kind, product)
    rates = _STATUTORY[seg]
    turnover = quantity * price
    buy = side is Side.BUY
    brokerage = _paise(brokerage_schedule(broker)[seg].fee(turnover))
    exchange = _paise(turnover * rates.exchange)
    sebi = _paise(turnover * _SEBI_RATE)
    return Charges(
        brokerage=brokerage,
        stt=_paise(turnover * (rates.stt_buy if buy else rates.stt_sell)),
        exchange_turnover=exchange,
        sebi_turnover=sebi,
        stamp_duty=_paise(turnover * (rates.stamp_buy if buy else _ZERO)),
        gst=_paise((brokerage + exchange + sebi) * _GST_RATE),
    )
