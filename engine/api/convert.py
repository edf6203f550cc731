"""Domain values to protobuf messages and back. Decimals travel as strings, never floats."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from engine.brokers.base import Funds
from engine.config import AccountSettings
from engine.domain import Fill, Order, OrderEvent, OrderStatus, OrderType, Product, Side
from engine.domain.accounts import AccountSnapshot
from engine.errors import InvalidArgument
from engine.ledger import ConsolidatedPosition, MarkedPosition
from engine.portfolio import AccountBook, HoldingView, PnlPoint, PortfolioView
from engine.risk.states import Scope, ScopeKind, TradingState
from engine.routing import CandidateReport, RouteDecision, RoutingMode, slices
from engine.security.tokens import Role
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2, security_pb2

E = TypeVar("E", bound=StrEnum)
_PAISA = Decimal("0.01")
_AVERAGE = Decimal("0.0001")  # a consolidated average price's places


@functools.cache  # a handful of members, converted for every order, fill and position sent
def _to_proto_enum(member: StrEnum, prefix: str, enum_type) -> int:
    return enum_type.Value(f"{prefix}_{member.name}")  # by name: SL_M, not "SL-M"


def _from_proto_enum(value: int, prefix: str, enum_type, domain: type[E]) -> E | None:
    name = enum_type.Name(value) if value in enum_type.values() else ""
    key = name.removeprefix(f"{prefix}_")
    return domain[key] if key in domain.__members__ else None


def role_to_proto(role: Role) -> int:
    return _to_proto_enum(role, "ROLE", security_pb2.Role)


def role_from_proto(value: int) -> Role | None:
    return _from_proto_enum(value, "ROLE", security_pb2.Role, Role)


def side_to_proto(side: Side) -> int:
    return _to_proto_enum(side, "SIDE", common_pb2.Side)


def side_from_proto(value: int) -> Side | None:
    return _from_proto_enum(value, "SIDE", common_pb2.Side, Side)


def product_to_proto(product: Product) -> int:
    return _to_proto_enum(product, "PRODUCT", common_pb2.Product)


def product_from_proto(value: int) -> Product | None:
    return _from_proto_enum(value, "PRODUCT", common_pb2.Product, Product)


def order_type_to_proto(order_type: OrderType) -> int:
    return _to_proto_enum(order_type, "ORDER_TYPE", common_pb2.OrderType)


def order_type_from_proto(value: int) -> OrderType | None:
    return _from_proto_enum(value, "ORDER_TYPE", common_pb2.OrderType, OrderType)


def status_to_proto(status: OrderStatus) -> int:
    return _to_proto_enum(status, "ORDER_STATUS", orders_pb2.OrderStatus)


def status_from_proto(value: int) -> OrderStatus | None:
    return _from_proto_enum(value, "ORDER_STATUS", orders_pb2.OrderStatus, OrderStatus)


def trading_state_to_proto(state: TradingState) -> int:
    return _to_proto_enum(state, "TRADING_STATE", common_pb2.TradingState)


def trading_state_from_proto(value: int) -> TradingState | None:
    return _from_proto_enum(value, "TRADING_STATE", common_pb2.TradingState, TradingState)


def scope_to_proto(scope: Scope) -> common_pb2.Scope:
    return common_pb2.Scope(kind=_to_proto_enum(scope.kind, "SCOPE_KIND", common_pb2.ScopeKind), name=scope.name)


def scope_from_proto(scope: common_pb2.Scope) -> Scope:
    kind = _from_proto_enum(scope.kind, "SCOPE_KIND", common_pb2.ScopeKind, ScopeKind)
    if kind is None:
        raise InvalidArgument("scope.kind", "required: SCOPE_KIND_GLOBAL, _GROUP or _ACCOUNT")
    return Scope(kind, scope.name)


def dec(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def money(value: Decimal) -> str:
    return format(value.quantize(_PAISA), "f")


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def order_to_proto(order: Order, broker: str) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        account=order.account,
        broker=broker,
        instrument=str(order.instrument),
        side=side_to_proto(order.side),
        quantity=order.quantity,
        product=product_to_proto(order.product),
        order_type=order_type_to_proto(order.order_type),
        price=dec(order.price),
        trigger_price=dec(order.trigger_price),
        status=status_to_proto(order.status),
        filled_quantity=order.filled_quantity,
        average_price=dec(order.average_price),
        broker_order_id=order.broker_order_id or "",
        status_message=order.status_message,
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        parent_order_id=order.parent_order_id or "",
        external=order.external,
    )


_ROUTING_MODES = {
    RoutingMode.STANDARD: orders_pb2.ROUTING_MODE_STANDARD,
    RoutingMode.ORCHESTRATOR: orders_pb2.ROUTING_MODE_ORCHESTRATOR,
}


def route_to_proto(decision: RouteDecision, freeze_quantity: int, lot_size: int) -> orders_pb2.RouteDecision:
    return orders_pb2.RouteDecision(
        mode=_ROUTING_MODES[decision.mode],
        reason=decision.reason,
        legs=[
            orders_pb2.RouteLeg(
                account=leg.account, quantity=leg.quantity, slices=slices(leg.quantity, freeze_quantity, lot_size)
            )
            for leg in decision.legs
        ],
        candidates=[_candidate_to_proto(c) for c in decision.candidates],
    )


def _candidate_to_proto(c: CandidateReport) -> orders_pb2.RouteCandidate:
    scores = c.scores
    return orders_pb2.RouteCandidate(
        account=c.account,
        broker=c.broker,
        capacity=c.capacity,
        excluded=c.excluded,
        fee=money(c.fee) if c.fee is not None else "",
        score=scores.total if scores else 0.0,
        margin_score=scores.margin if scores else 0.0,
        health_score=scores.health if scores else 0.0,
        latency_score=scores.latency if scores else 0.0,
        fee_score=scores.fees if scores else 0.0,
        preference_score=scores.preference if scores else 0.0,
        quantity=c.quantity,
    )


def fill_to_proto(fill: Fill) -> orders_pb2.Fill:
    return orders_pb2.Fill(
        trade_id=fill.trade_id,
        order_id=fill.order_id,
        account=fill.account,
        instrument=str(fill.instrument),
        side=side_to_proto(fill.side),
        product=product_to_proto(fill.product),
        quantity=fill.quantity,
        price=dec(fill.price),
        filled_at=timestamp(fill.filled_at),
    )


def event_to_proto(event: OrderEvent, broker: str) -> orders_pb2.OrderEvent:
    message = orders_pb2.OrderEvent(sequence=event.sequence, time=timestamp(event.at))
    if event.order is not None:
        message.order.CopyFrom(order_to_proto(event.order, broker))
    elif event.fill is not None:
        message.fill.CopyFrom(fill_to_proto(event.fill))
    return message


# A portfolio message is kept per PortfolioView (PortfolioMessages) and each read redraws only the rows whose domain
# objects changed: a view hands out the same object for a row that did not. Rows are filled field by field, in place
# or in a row just added to its repeated field (a message handed to a constructor is copied), by the same functions.
Row = TypeVar("Row")
Drawn = TypeVar("Drawn", portfolio_pb2.Position, portfolio_pb2.Holding, portfolio_pb2.AccountPortfolio)


def _fill_marked(into: portfolio_pb2.Position, p: MarkedPosition, was: MarkedPosition | None) -> None:
    if was is None or p.state is not was.state:  # else only marked again
        s = p.state
        into.account = s.account
        into.instrument = str(s.instrument)
        into.product = product_to_proto(s.product)
        into.quantity = s.quantity
        into.average_price = dec(s.average_price)
        into.realised_pnl = money(s.realised_pnl)
    into.last_price = dec(p.last_price)
    into.unrealised_pnl = money(p.unrealised_pnl)


def _fill_consolidated(into: portfolio_pb2.Position, p: ConsolidatedPosition, was: ConsolidatedPosition | None) -> None:
    into.instrument = str(p.instrument)
    into.product = product_to_proto(p.product)
    into.quantity = p.quantity
    into.average_price = dec(p.average_price.quantize(_AVERAGE) if p.average_price is not None else None)
    into.last_price = dec(p.last_price)
    into.realised_pnl = money(p.realised_pnl)
    into.unrealised_pnl = money(p.unrealised_pnl)
    if was is None or p.accounts is not was.accounts:  # the same tuple while no account joins
        del into.accounts[:]
        into.accounts.extend(p.accounts)


def _fill_holding(into: portfolio_pb2.Holding, h: HoldingView, _was: HoldingView | None) -> None:
    into.account = h.account
    into.instrument = str(h.instrument)
    into.quantity = h.quantity
    into.average_price = money(h.average_price)
    into.last_price = dec(h.last_price)
    into.unrealised_pnl = money(h.unrealised_pnl)


def _fill_funds(into: portfolio_pb2.Funds, funds: Funds) -> None:
    into.available, into.used_margin, into.total = money(funds.available), money(funds.used_margin), money(funds.total)


class PortfolioMessage:
    """One PortfolioView's message, kept between reads and redrawn where the view changed.

    It is handed to gRPC as it is (`lend`): a copy of 20,000 rows costs as much as serializing them. gRPC serializes
    it once the handler returns, but an interceptor may await something first, and a read in the meantime would
    change it under the serializer; so a lent message is not changed until it is given back (`returned`, when its
    call is done), and a read before that goes on with a copy, leaving the lent one to its reader.

    A field set again does not free the bytes it held (they stay in the message's arena until the message goes),
    so once as many rows were filled again as the message holds, it is copied, which keeps only what is live.
    """

    def __init__(self) -> None:
        self._message = portfolio_pb2.Portfolio()
        self._lent = False
        self._drawn = PortfolioView()  # as drawn: a view's lists are never changed once handed out
        self._filled = 0  # rows filled again since the message was made

    def draw(self, view: PortfolioView) -> portfolio_pb2.Portfolio:
        """The message brought up to date with `view`, without as_of; this object's, not to be handed out."""
        rows = len(view.positions) + len(view.holdings) + sum(len(b.positions) + len(b.holdings) for b in view.accounts)
        if self._lent or self._filled > rows:  # the lent one is left to its reader as it is
            kept, self._message = self._message, portfolio_pb2.Portfolio()
            self._message.CopyFrom(kept)
            self._lent, self._filled = False, 0
        message, drawn = self._message, self._drawn
        message.ClearField("as_of")
        self._filled += 1  # the totals and as_of, set again on every read
        realised, unrealised = view.realised_pnl, view.unrealised_pnl
        totals = message.totals
        totals.realised_pnl, totals.unrealised_pnl = money(realised), money(unrealised)
        totals.total_pnl, totals.holdings_value = money(realised + unrealised), money(view.holdings_value)
        _fill_funds(totals.funds, view.funds)
        self._redraw(message.positions, view.positions, drawn.positions, _fill_consolidated)
        self._redraw(message.holdings, view.holdings, drawn.holdings, _fill_holding)
        self._redraw(message.accounts, view.accounts, drawn.accounts, self._fill_account)
        drawn.positions, drawn.holdings, drawn.accounts = view.positions, view.holdings, view.accounts
        return message

    def lend(self, as_of: datetime) -> portfolio_pb2.Portfolio:
        """The message as last drawn, stamped `as_of`, to hand to gRPC; call `returned` once it is serialized."""
        self._message.as_of.FromDatetime(as_of)
        self._lent = True
        return self._message

    def returned(self, message: portfolio_pb2.Portfolio) -> None:
        if message is self._message:
            self._lent = False

    def _redraw(
        self,
        into: RepeatedCompositeFieldContainer[Drawn],
        rows: Sequence[Row],
        drawn: Sequence[Row],
        fill: Callable[[Drawn, Row, Row | None], None],
    ) -> None:
        """Bring `into`, drawn from `drawn`, to `rows`: each row that is not the object drawn is filled again; a
        list of another length (rows added) is drawn whole."""
        if len(rows) != len(drawn):
            del into[:]
            for row in rows:
                fill(into.add(), row, None)
            self._filled += len(drawn)  # the rows let go
            return
        for place, (row, was) in enumerate(zip(rows, drawn, strict=True)):
            if row is not was:
                fill(into[place], row, was)
                self._filled += 1

    def _fill_account(self, into: portfolio_pb2.AccountPortfolio, book: AccountBook, was: AccountBook | None) -> None:
        into.account = book.account
        into.broker = book.broker
        into.realised_pnl = money(book.realised_pnl)
        into.unrealised_pnl = money(book.unrealised_pnl)
        if was is None or book.funds_as_of is not was.funds_as_of:
            if book.funds_as_of is None:
                into.ClearField("funds_as_of")
            else:
                into.funds_as_of.FromDatetime(book.funds_as_of)
        if was is None or book.funds is not was.funds:
            if book.funds is None:
                into.ClearField("funds")
            else:
                _fill_funds(into.funds, book.funds)
        if was is not None and book.after == was.version:
            for place in book.changed:
                _fill_marked(into.positions[place], book.positions[place], was.positions[place])
            self._filled += len(book.changed)
        else:
            self._redraw(into.positions, book.positions, was.positions if was else [], _fill_marked)
        self._redraw(into.holdings, book.holdings, was.holdings if was else [], _fill_holding)


class PortfolioMessages:
    """The message of each PortfolioView, kept as long as the view is (the Gateway keeps a few)."""

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[PortfolioView, PortfolioMessage] = weakref.WeakKeyDictionary()

    def of(self, view: PortfolioView) -> PortfolioMessage:
        kept = self._kept.get(view)
        if kept is None:
            kept = self._kept[view] = PortfolioMessage()
        return kept


def pnl_history_to_proto(points: list[PnlPoint]) -> portfolio_pb2.PnlHistory:
    return portfolio_pb2.PnlHistory(
        points=[
            portfolio_pb2.PnlPoint(
                at=timestamp(p.at),
                realised_pnl=money(p.realised),
                unrealised_pnl=money(p.unrealised),
                total_pnl=money(p.total),
            )
            for p in points
        ]
    )


def account_to_proto(
    snap: AccountSnapshot,
    settings: AccountSettings,
    is_default: bool,
    groups: list[str],
    multiplier: Decimal,
    state: tuple[TradingState, str],
) -> accounts_pb2.Account:
    """`groups` and `multiplier` as the API last set them (AccountRegistry); `state`: effective, and why."""
    return accounts_pb2.Account(
        id=snap.account,
        broker=snap.broker,
        label=settings.label,
        groups=groups,
        multiplier=dec(multiplier),
        trading_state=trading_state_to_proto(state[0]),
        trading_state_reason=state[1],
        status=accounts_pb2.AccountStatus.Value(f"ACCOUNT_STATUS_{snap.status.name}"),
        health=accounts_pb2.AccountHealth(
            last_sync=timestamp(snap.last_sync),
            last_error=snap.last_error,
            consecutive_errors=snap.consecutive_errors,
            ack_latency_ms=round(snap.ack_latency_ms, 3),
            open_orders=snap.open_orders,
            circuit=snap.circuit.value,
            error_rate=snap.error_rate,
            queue_depth=snap.queue_depth,
            rate_limited=snap.rate_limited,
        ),
        is_default=is_default,
        login_url=snap.login_url,
    )
