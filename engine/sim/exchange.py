"""An in-process exchange and broker RMS for one paper trading account.

Matching is lazy and clock-driven: nothing runs in the background, every public call first replays
the simulated seconds since the last call. That keeps the simulator deterministic under a fake clock
and free when idle, and lets its whole state be saved and restored between any two calls.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from engine.brokers.base import (
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerTrade,
    Funds,
    Holding,
    ModifyRequest,
    PlaceRequest,
    Quote,
    Rejected,
)
from engine.domain import Instrument, InstrumentId, Product, Side
from engine.domain.margin import MARGIN_RATES
from engine.domain.sessions import TradingSessions
from engine.instrument_master import InstrumentMaster
from engine.sim import rules
from engine.sim.margin import order_margin, position_margin
from engine.sim.portfolio import Portfolio
from engine.sim.prices import PricePath
from engine.sim.records import SimOrder, SimPosition, Stage, trade_from_json, trade_to_json

MAX_CATCH_UP_SECONDS = 900  # seconds replayed one by one per call; beyond that the book jumps to now
ORDER_ID_BASE = 260_000_000_000
TRADE_ID_BASE = 10_000_000
STATE_VERSION = 2
_PAISA = Decimal("0.01")
_NO_HOLDINGS: Mapping[InstrumentId, tuple[int, Decimal]] = MappingProxyType({})

_Status = BrokerOrderStatus
_PLACE_STAGES = (Stage.PUT_ORDER_REQ_RECEIVED, Stage.VALIDATION_PENDING)


class RejectKind(StrEnum):
    """Which check refused an order; wire fronts pick their error type from it."""

    INPUT = "INPUT"  # quantity, price, tick, band, product, session
    MARGIN = "MARGIN"
    HOLDING = "HOLDING"
    ORDER = "ORDER"  # the order does not exist or can no longer change


class SimRejected(Rejected):
    def __init__(self, kind: RejectKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def utc_now() -> datetime:
    """The default exchange clock."""
    return datetime.now(UTC)


def _second_start(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


class SimExchange:
    """Order book, matching, margin and portfolio of ONE account against simulated prices."""

    def __init__(
        self,
        instruments: InstrumentMaster,
        prices: PricePath,
        *,
        opening_cash: Decimal,
        holdings: Mapping[InstrumentId, tuple[int, Decimal]] = _NO_HOLDINGS,
        half_spread_ticks: int = 1,
        depth_per_second: int = 5000,
        price_band_percent: Decimal = Decimal(0),
        sessions: TradingSessions | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """`price_band_percent` 0 disables the band check; `sessions` None trades around the clock."""
        if half_spread_ticks < 0:
            raise ValueError("half_spread_ticks must not be negative")
        if depth_per_second < 1:
            raise ValueError("depth_per_second must be positive")
        unknown = [str(i) for i in holdings if i not in instruments]
        if unknown:
            raise ValueError(f"holdings in unknown instruments: {', '.join(unknown)}")
        self._instruments = instruments
        self._prices = prices
        self._clock = clock
        self.half_spread_ticks = half_spread_ticks
        self.depth_per_second = depth_per_second
        self.price_band_percent = Decimal(price_band_percent)
        self.sessions = sessions
        self._portfolio = Portfolio(Decimal(opening_cash), holdings)
        self._orders: dict[str, SimOrder] = {}
        self._trades: list[BrokerTrade] = []
        self._depth_used: dict[tuple[InstrumentId, Side], tuple[int, int]] = {}
        self._order_seq = 0
        self._trade_seq = 0
        self._last_second = int(self._now().timestamp())
        self._revision = 0

    @property
    def instruments(self) -> InstrumentMaster:
        return self._instruments

    @property
    def revision(self) -> int:
        """Bumped on every change to the book; a saver compares it to know whether to write."""
        return self._revision

    # ---- orders -------------------------------------------------------------------------------

    def place(self, request: PlaceRequest, *, validity: str = "DAY", meta: Mapping[str, Any] | None = None) -> str:
        """Accept or reject a new order; a rejected one is still recorded, as a broker does.

        `meta` holds a wire front's own order fields (variety, disclosed quantity, ...), kept as given.
        """
        now = self._advance()
        self._order_seq += 1
        order_type = request.order_type
        order = SimOrder(
            order_id=str(ORDER_ID_BASE + self._order_seq),
            tag=request.tag,
            instrument=request.instrument,
            side=request.side,
            product=request.product,
            order_type=order_type,
            quantity=request.quantity,
            price=request.price if order_type.needs_price else None,
            trigger_price=request.trigger_price if order_type.needs_trigger else None,
            status=_Status.TRIGGER_PENDING if order_type.needs_trigger else _Status.OPEN,
            placed_at=now,
            updated_at=now,
            validity=validity,
            meta=dict(meta or {}),
        )
        for stage in _PLACE_STAGES:
            order.record(stage, now)
        refusal = self._check(order, now, replacing=None)
        self._orders[order.order_id] = order
        self._revision += 1
        if refusal:
            order.status = _Status.REJECTED
            order.status_message = refusal.message
            order.record_settled(now)
            raise refusal
        order.record(Stage.OPEN_PENDING, now)
        order.record_settled(now)
        self._match_now(now)
        if order.validity == "IOC" and order.is_live:
            self._close(order, now, "IOC order: the unfilled quantity was cancelled")
        return order.order_id

    def modify(self, order_id: str, change: ModifyRequest) -> None:
        """Change a live order in place; a refused change leaves it exactly as it was."""
        now = self._advance()
        order = self._live_order(order_id)
        order_type = change.order_type or order.order_type
        quantity = order.quantity if change.quantity is None else change.quantity
        price = order.price if change.price is None else change.price
        trigger = order.trigger_price if change.trigger_price is None else change.trigger_price
        if 0 < quantity <= order.filled_quantity:
            raise SimRejected(
                RejectKind.ORDER, f"quantity {quantity} must exceed the filled quantity {order.filled_quantity}"
            )
        triggered = order.triggered and order_type is order.order_type
        candidate = replace(
            order,
            order_type=order_type,
            quantity=quantity,
            price=price if order_type.needs_price else None,
            trigger_price=trigger if order_type.needs_trigger else None,
            triggered=triggered,
            status=_Status.TRIGGER_PENDING if order_type.needs_trigger and not triggered else _Status.OPEN,
            updated_at=now,
            modifications=order.modifications + 1,
            history=list(order.history),
        )
        refusal = self._check(candidate, now, replacing=order)
        if refusal:
            raise refusal
        candidate.record(Stage.MODIFY_VALIDATION_PENDING, now)
        candidate.record(Stage.MODIFY_PENDING, now)
        candidate.record_settled(now)
        self._orders[order_id] = candidate  # same key: keeps its place in time priority
        self._revision += 1
        self._match_now(now)

    def cancel(self, order_id: str) -> None:
        now = self._advance()
        order = self._live_order(order_id)
        order.record(Stage.CANCEL_PENDING, now)
        self._close(order, now, "")

    def _close(self, order: SimOrder, now: datetime, message: str) -> None:
        order.status = _Status.CANCELLED
        order.status_message = message
        order.updated_at = now
        order.record_settled(now)
        self._revision += 1

    # ---- reads --------------------------------------------------------------------------------

    def orders(self) -> list[BrokerOrder]:
        self._advance()
        return [order.to_broker() for order in self._orders.values()]

    def order_records(self) -> list[SimOrder]:
        """Every order of the day with its history, for wire fronts; callers must not change them."""
        self._advance()
        return list(self._orders.values())

    def order_record(self, order_id: str) -> SimOrder:
        self._advance()
        order = self._orders.get(order_id)
        if order is None:
            raise SimRejected(RejectKind.ORDER, f"unknown order id {order_id}")
        return order

    def trades(self) -> list[BrokerTrade]:
        self._advance()
        return list(self._trades)

    def positions(self) -> list[BrokerPosition]:
        now = self._advance()
        return [p.to_broker(self._last_price(p.instrument, now)) for p in self._portfolio.iter_positions()]

    def holdings(self) -> list[Holding]:
        now = self._advance()
        return [
            Holding(instrument, h.quantity, h.average_price, self._last_price(instrument, now))
            for instrument, h in self._portfolio.holdings.items()
        ]

    def funds(self) -> Funds:
        now = self._advance()
        used = self._used_margin(now)
        total = self._portfolio.cash + self._portfolio.realised
        return Funds(
            available=(total - used).quantize(_PAISA),
            used_margin=used.quantize(_PAISA),
            total=total.quantize(_PAISA),
        )

    def quote(self, instrument_id: InstrumentId) -> Quote:
        now = self._advance()
        instrument = self._instruments.get(instrument_id)
        if instrument is None:
            raise SimRejected(RejectKind.INPUT, f"unknown instrument {instrument_id}")
        last, bid, ask = self._quote(instrument, now)
        return Quote(instrument=instrument_id, last_price=last, bid=bid, ask=ask, at=now)

    # ---- validation ---------------------------------------------------------------------------

    def _check(self, order: SimOrder, now: datetime, replacing: SimOrder | None) -> SimRejected | None:
        """Why `order` (new, or a modified copy of `replacing`) must be refused, or None."""
        instrument = self._instruments.get(order.instrument)
        if instrument is None:
            return SimRejected(RejectKind.INPUT, f"unknown instrument {order.instrument}")
        closed = self.sessions.closed_reason(order.instrument.exchange, now) if self.sessions else None
        invalid = (
            closed
            or rules.check_quantity(instrument, order.quantity)
            or rules.check_prices(instrument, order.order_type, order.side, order.price, order.trigger_price)
            or rules.check_band(instrument, self.price_band_percent, order.price, order.trigger_price)
            or rules.check_product(instrument, order.product)
        )
        if invalid:
            return SimRejected(RejectKind.INPUT, invalid)
        short = self._check_funds(order, now, replacing)
        if short:
            return SimRejected(RejectKind.MARGIN, short)
        unheld = self._check_holdings(order, replacing)
        return SimRejected(RejectKind.HOLDING, unheld) if unheld else None

    def _check_funds(self, order: SimOrder, now: datetime, replacing: SimOrder | None) -> str | None:
        live = self._live_orders()
        before = self._order_margin(live, now)
        after_book = [order if o is replacing else o for o in live] if replacing else [*live, order]
        required = self._order_margin(after_book, now) - before
        if required <= 0:
            return None
        available = self._portfolio.cash + self._portfolio.realised - self._position_margin() - before
        if required > available:
            return (
                f"insufficient funds: order needs margin {required.quantize(_PAISA)}, "
                f"available {available.quantize(_PAISA)}"
            )
        return None

    def _check_holdings(self, order: SimOrder, replacing: SimOrder | None) -> str | None:
        if order.product is not Product.CNC or order.side is not Side.SELL:
            return None
        pending = sum(
            o.remaining
            for o in self._live_orders()
            if o is not replacing
            and o.instrument == order.instrument
            and o.product is Product.CNC
            and o.side is Side.SELL
        )
        sellable = self._portfolio.deliverable(order.instrument) - pending
        if order.remaining > sellable:
            return (
                f"insufficient holdings: selling {order.remaining} {order.instrument} "
                f"but only {max(0, sellable)} available for CNC sell"
            )
        return None

    def _live_order(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise SimRejected(RejectKind.ORDER, f"unknown order id {order_id}")
        if not order.is_live:
            raise SimRejected(RejectKind.ORDER, f"order {order_id} is already {order.status}")
        return order

    # ---- margin -------------------------------------------------------------------------------

    def _position_margin(self) -> Decimal:
        return position_margin(self._portfolio.iter_positions())

    def _order_margin(self, orders: list[SimOrder], now: datetime) -> Decimal:
        quotes: dict[InstrumentId, tuple[Decimal, Decimal, Decimal]] = {}

        def price_of(order: SimOrder) -> Decimal:
            if order.price is not None:
                return order.price
            if order.instrument not in quotes:
                instrument = self._instruments.get(order.instrument)
                assert instrument is not None  # live orders passed validation
                quotes[order.instrument] = self._quote(instrument, now)
            _, bid, ask = quotes[order.instrument]
            return ask if order.side is Side.BUY else bid

        return order_margin(orders, self._portfolio.net_quantities(), price_of)

    def _used_margin(self, now: datetime) -> Decimal:
        return self._position_margin() + self._order_margin(self._live_orders(), now)

    # ---- matching -----------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now

    def _live_orders(self) -> list[SimOrder]:
        return [o for o in self._orders.values() if o.is_live]

    def _advance(self) -> datetime:
        """Replay every simulated second since the last call (up to the cap), then the current one."""
        now = self._now()
        now_second = int(now.timestamp())
        if now_second < self._last_second:  # a clock stepping back must not rewind the book
            now_second, now = self._last_second, _second_start(self._last_second)
        live = self._live_orders()
        if live:
            last_replayed = min(now_second - 1, self._last_second + MAX_CATCH_UP_SECONDS)
            for second in range(self._last_second + 1, last_replayed + 1):
                self._match_second(second, _second_start(second), live)
                live = [o for o in live if o.is_live]
                if not live:
                    break
            self._match_second(now_second, now, live)
        self._last_second = now_second
        return now

    def _match_now(self, now: datetime) -> None:
        self._match_second(self._last_second, now, self._live_orders())

    def _match_second(self, second: int, at: datetime, orders: list[SimOrder]) -> None:
        quotes: dict[InstrumentId, tuple[Decimal, Decimal, Decimal]] = {}
        for order in orders:
            instrument = self._instruments.get(order.instrument)
            if not order.is_live or instrument is None:
                continue
            if order.instrument not in quotes:
                quotes[order.instrument] = self._quote(instrument, at)
            last, bid, ask = quotes[order.instrument]
            buy = order.side is Side.BUY
            if order.order_type.needs_trigger and not order.triggered:
                trigger = order.trigger_price
                assert trigger is not None
                if not (last >= trigger if buy else last <= trigger):
                    continue
                order.triggered = True
                order.status = _Status.OPEN
                order.updated_at = at
                order.record_settled(at)
                self._revision += 1
            fill_price = ask if buy else bid
            if order.is_limit:
                limit = order.price
                assert limit is not None
                if (fill_price > limit) if buy else (fill_price < limit):
                    continue
            quantity = min(order.remaining, self._depth_left(instrument, order.side, second))
            if quantity > 0:
                self._fill(order, quantity, fill_price, second, at)

    def _depth_left(self, instrument: Instrument, side: Side, second: int) -> int:
        """Units still on offer this second, in whole lots (at least one lot per second)."""
        capacity = max(self.depth_per_second, instrument.lot_size)
        used_second, used = self._depth_used.get((instrument.id, side), (second, 0))
        left = capacity - (used if used_second == second else 0)
        return left - left % instrument.lot_size

    def _fill(self, order: SimOrder, quantity: int, price: Decimal, second: int, at: datetime) -> None:
        key = (order.instrument, order.side)
        used_second, used = self._depth_used.get(key, (second, 0))
        self._depth_used[key] = (second, (used if used_second == second else 0) + quantity)
        self._trade_seq += 1
        self._trades.append(
            BrokerTrade(
                trade_id=str(TRADE_ID_BASE + self._trade_seq),
                broker_order_id=order.order_id,
                instrument=order.instrument,
                side=order.side,
                product=order.product,
                quantity=quantity,
                price=price,
                filled_at=at,
            )
        )
        order.filled_quantity += quantity
        order.filled_value += quantity * price
        order.updated_at = at
        if order.remaining == 0:
            order.status = _Status.COMPLETE
        order.record_settled(at)
        self._portfolio.book_fill(order.instrument, order.product, order.side, quantity, price)
        self._revision += 1

    def _quote(self, instrument: Instrument, at: datetime) -> tuple[Decimal, Decimal, Decimal]:
        last = self._prices.price_at(instrument, at)
        spread = instrument.tick_size * self.half_spread_ticks
        return last, max(last - spread, instrument.tick_size), last + spread

    def _last_price(self, instrument_id: InstrumentId, now: datetime) -> Decimal:
        instrument = self._instruments.get(instrument_id)
        return self._prices.price_at(instrument, now) if instrument else Decimal(0)

    # ---- persistence --------------------------------------------------------------------------

    def to_json(self, *, settled: Collection[str] = (), trades_from: int = 0) -> dict[str, Any]:
        """The account state as JSON-ready data (Decimals as strings, datetimes ISO 8601).

        `settled` (order ids known to be finished and already saved) and `trades_from` (trades
        already saved) make it a delta: finished orders and past trades never change again.
        """
        return {
            "version": STATE_VERSION,
            "half_spread_ticks": self.half_spread_ticks,
            "depth_per_second": self.depth_per_second,
            "price_band_percent": str(self.price_band_percent),
            "last_matched_second": self._last_second,
            "order_seq": self._order_seq,
            "trade_seq": self._trade_seq,
            "portfolio": self._portfolio.to_json(),
            "orders": [o.to_json() for o in self._orders.values() if o.order_id not in settled],
            "trades_from": trades_from,
            "trades": [trade_to_json(t) for t in self._trades[trades_from:]],
            "depth_used": [
                {"instrument": str(i), "side": side.value, "second": second, "used": used}
                for (i, side), (second, used) in self._depth_used.items()
            ],
        }

    @property
    def trade_count(self) -> int:
        return len(self._trades)

    def finished_order_ids(self) -> set[str]:
        return {o.order_id for o in self._orders.values() if not o.is_live}

    @classmethod
    def from_json(
        cls,
        data: Mapping[str, Any],
        instruments: InstrumentMaster,
        prices: PricePath,
        *,
        sessions: TradingSessions | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> SimExchange:
        """Rebuild an exchange saved by `to_json`; matching resumes from the saved second."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sim exchange state version {data.get('version')!r}")
        portfolio = Portfolio.from_json(data["portfolio"])
        exchange = cls(
            instruments,
            prices,
            opening_cash=portfolio.opening_cash,
            half_spread_ticks=int(data["half_spread_ticks"]),
            depth_per_second=int(data["depth_per_second"]),
            price_band_percent=Decimal(data["price_band_percent"]),
            sessions=sessions,
            clock=clock,
        )
        exchange._portfolio = portfolio
        exchange._last_second = int(data["last_matched_second"])
        exchange._order_seq = int(data["order_seq"])
        exchange._trade_seq = int(data["trade_seq"])
        for raw in data["orders"]:
            order = SimOrder.from_json(raw)
            exchange._orders[order.order_id] = order
        exchange._trades = [trade_from_json(t) for t in data["trades"]]
        for raw in data["depth_used"]:
            key = (InstrumentId.parse(raw["instrument"]), Side(raw["side"]))
            exchange._depth_used[key] = (int(raw["second"]), int(raw["used"]))
        return exchange

    # ---- wire-front additions -----------------------------------------------------------------

    def position_records(self) -> list[SimPosition]:
        """Copies of the positions with their realised PnL: a wire front shows more than BrokerPosition holds."""
        self._advance()
        return [replace(p) for p in self._portfolio.iter_positions()]

    def annotate(self, order_id: str, meta: Mapping[str, Any]) -> None:
        """Merge wire-front fields into an order's meta, e.g. the market protection a modification set."""
        order = self.order_record(order_id)
        order.meta.update(meta)
        self._revision += 1

    def convert_position(
        self, instrument_id: InstrumentId, side: Side, quantity: int, old: Product, new: Product
    ) -> None:
        """Move `quantity` of today's position from product `old` to `new` at its average price.

        `side` BUY converts long quantity, SELL short. Refused when the position is smaller, the new
        product does not suit the instrument, or the margin the new product adds is not available.
        """
        now = self._advance()
        instrument = self._instruments.get(instrument_id)
        if instrument is None:
            raise SimRejected(RejectKind.INPUT, f"unknown instrument {instrument_id}")
        if old is new:
            invalid: str | None = f"the position is already {new}"
        elif new is Product.CNC and side is Side.SELL:
            invalid = "a short position cannot be converted to CNC"
        elif quantity <= 0 or quantity % instrument.lot_size:
            invalid = f"quantity {quantity} must be a positive multiple of the lot size {instrument.lot_size}"
        else:
            invalid = rules.check_product(instrument, new)
        if invalid:
            raise SimRejected(RejectKind.INPUT, invalid)
        position = self._portfolio.positions.get((instrument_id, old))
        held = position.quantity * side.sign if position else 0
        if position is None or quantity > held:
            message = f"only {max(0, held)} of the {side} {old} position in {instrument_id} can be converted"
            raise SimRejected(RejectKind.INPUT, message)
        extra = quantity * position.average_price * (MARGIN_RATES[new] - MARGIN_RATES[old])
        available = self._portfolio.cash + self._portfolio.realised - self._used_margin(now)
        if extra > available:
            raise SimRejected(
                RejectKind.MARGIN,
                f"insufficient funds: conversion needs margin {extra.quantize(_PAISA)}, "
                f"available {available.quantize(_PAISA)}",
            )
        self._portfolio.convert(instrument_id, old, new, side.sign * quantity)
        self._revision += 1
