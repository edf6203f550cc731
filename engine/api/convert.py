"""Domain values to protobuf messages and back. Decimals travel as strings, never floats."""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from engine.config import AccountSettings
from engine.domain import Fill, Order, OrderEvent, OrderStatus, OrderType, Product, Side
from engine.domain.accounts import AccountSnapshot
from engine.errors import InvalidArgument
from engine.portfolio import PnlPoint
from engine.risk.states import Scope, ScopeKind, TradingState
from engine.routing import CandidateReport, RouteDecision, RoutingMode, slices
from engine.security.tokens import Role
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2, security_pb2

E = TypeVar("E", bound=StrEnum)
_PAISA = Decimal("0.01")


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
