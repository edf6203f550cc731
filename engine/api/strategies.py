"""StrategyService: create strategies, see them, pause, resume and stop them, follow their events.

Creating checks everything it can up front (parameters, instruments, lot and tick sizes, accounts the caller
may use) so a strategy that starts is one that can run; the runner (engine/api/strategy_runner.py) does the
rest. A strategy is seen by its owner, by admins and by anyone who may use every account it touches; only its
owner or an admin may change it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import grpc
from pydantic import ValidationError

from engine import strategies
from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.events import EventHub, SequencedHub, SharedMessages
from engine.api.gateway import Gateway
from engine.api.registry import AccountRegistry
from engine.api.strategy_runner import StrategyRunner
from engine.domain import InstrumentId, OrderType, Product, Side
from engine.domain.ids import new_order_id
from engine.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from engine.ledger import PositionState
from engine.risk.states import TradingState
from engine.security.principal import Principal
from engine.security.tokens import Role
from engine.store.strategies import StrategyEvent, StrategyRecord, StrategyStore
from engine.strategies.base import StrategyStatus
from trademaster.v1 import common_pb2, orders_pb2, strategies_pb2, strategies_pb2_grpc

_PB = strategies_pb2


def _status_to_proto(status: StrategyStatus) -> int:
    return _PB.StrategyStatus.Value(f"STRATEGY_STATUS_{status.name}")


def _enum_name(enum_type: Any, prefix: str, value: int) -> str | None:
    """The domain name of a proto enum value (SIDE_BUY -> BUY); None when unset or unknown, which the params
    model then reports on its field."""
    if value == 0 or value not in enum_type.values():
        return None
    return str(enum_type.Name(value)).removeprefix(f"{prefix}_")


def _text_or_none(value: str) -> str | None:
    return value or None


# -- params: proto -> the params model's JSON, and back ------------------------------------------------


def _spec_in(m: _PB.OrderSpec) -> dict[str, Any]:
    return {
        "account": m.account,
        "instrument": m.instrument,
        "side": _enum_name(common_pb2.Side, "SIDE", m.side),
        "quantity": m.quantity,
        "product": _enum_name(common_pb2.Product, "PRODUCT", m.product),
        "order_type": _enum_name(common_pb2.OrderType, "ORDER_TYPE", m.order_type),
        "price": _text_or_none(m.price),
        "trigger_price": _text_or_none(m.trigger_price),
    }


def _trail_in(m: _PB.Trail) -> dict[str, Any]:
    return {"points": _text_or_none(m.points), "percent": _text_or_none(m.percent)}


def _params_in(kind: str, m: Any) -> dict[str, Any]:
    if kind == "bracket":
        return {
            "entry": _spec_in(m.entry),
            "stop_loss": _text_or_none(m.stop_loss),
            "target": _text_or_none(m.target),
            "trail": _trail_in(m.trail) if m.HasField("trail") else None,
            "reentry": {
                "max_attempts": m.reentry.max_attempts,
                "cooldown_seconds": m.reentry.cooldown_seconds,
                "after_reject": m.reentry.after_reject,
                "after_stop_loss": m.reentry.after_stop_loss,
            }
            if m.HasField("reentry")
            else None,
        }
    if kind == "trailing_stop":
        return {
            "account": m.account,
            "instrument": m.instrument,
            "product": _enum_name(common_pb2.Product, "PRODUCT", m.product),
            "quantity": m.quantity,
            "trail": _trail_in(m.trail) if m.HasField("trail") else None,
        }
    if kind == "schedule":
        return {"cron": m.cron, "order": _spec_in(m.order), "max_runs": m.max_runs}
    return {
        "scope": {"kind": _enum_name(common_pb2.ScopeKind, "SCOPE_KIND", m.scope.kind), "name": m.scope.name},
        "stop_loss": _text_or_none(m.stop_loss),
        "target": _text_or_none(m.target),
        "then": _enum_name(common_pb2.TradingState, "TRADING_STATE", m.then),
    }


def _spec_out(d: dict[str, Any]) -> _PB.OrderSpec:
    return _PB.OrderSpec(
        account=d["account"],
        instrument=d["instrument"],
        side=convert.side_to_proto(Side(d["side"])),
        quantity=d["quantity"],
        product=convert.product_to_proto(Product(d["product"])),
        order_type=convert.order_type_to_proto(OrderType(d["order_type"])),
        price=d["price"] or "",
        trigger_price=d["trigger_price"] or "",
    )


def _trail_out(d: dict[str, Any] | None) -> _PB.Trail | None:
    if d is None:
        return None
    return _PB.Trail(points=d["points"]) if d.get("points") else _PB.Trail(percent=d["percent"])


def _params_out(kind: str, d: dict[str, Any]) -> Any:
    if kind == "bracket":
        return _PB.BracketParams(
            entry=_spec_out(d["entry"]),
            stop_loss=d["stop_loss"],
            target=d["target"],
            trail=_trail_out(d.get("trail")),
            reentry=_PB.ReEntry(**d["reentry"]) if d.get("reentry") else None,
        )
    if kind == "trailing_stop":
        return _PB.TrailingStopParams(
            account=d["account"],
            instrument=d["instrument"],
            product=convert.product_to_proto(Product(d["product"])),
            quantity=d["quantity"],
            trail=_trail_out(d["trail"]),
        )
    if kind == "schedule":
        return _PB.ScheduleParams(cron=d["cron"], order=_spec_out(d["order"]), max_runs=d["max_runs"])
    scope = d["scope"]
    return _PB.MtmGuardParams(
        scope=common_pb2.Scope(kind=common_pb2.ScopeKind.Value(f"SCOPE_KIND_{scope['kind']}"), name=scope["name"]),
        stop_loss=d.get("stop_loss") or "",
        target=d.get("target") or "",
        then=common_pb2.TradingState.Value(f"TRADING_STATE_{TradingState(d['then']).name}"),
    )


def strategy_to_proto(record: StrategyRecord, order_ids: list[str]) -> _PB.Strategy:
    message = _PB.Strategy(
        id=record.strategy_id,
        client_strategy_id=record.client_strategy_id,
        name=record.name,
        kind=record.kind,
        status=_status_to_proto(record.status),
        owner=record.owner,
        message=record.message,
        order_ids=order_ids,
        created_at=convert.timestamp(record.created_at),
        updated_at=convert.timestamp(record.updated_at),
        detail=json.dumps(record.state or {}, sort_keys=True),
    )
    getattr(message, record.kind).CopyFrom(_params_out(record.kind, record.params))
    return message


def event_to_proto(event: StrategyEvent) -> _PB.StrategyEvent:
    return _PB.StrategyEvent(
        sequence=event.sequence,
        strategy_id=event.strategy_id,
        at=convert.timestamp(event.at),
        kind=event.kind,
        message=event.message,
        order_id=event.order_id,
        status=_status_to_proto(event.status),
    )


def may_see(record: StrategyRecord, who: Principal) -> bool:
    return record.owner == who.user or who.role is Role.ADMIN or all(who.may_use(a) for a in record.accounts)


class StrategyService(strategies_pb2_grpc.StrategyServiceServicer):
    def __init__(
        self,
        store: StrategyStore,
        runner: StrategyRunner,
        gateway: Gateway,
        registry: AccountRegistry,
        orders: EventHub,
        events: SequencedHub[StrategyEvent],
    ) -> None:
        self._store = store
        self._runner = runner
        self._gw = gateway
        self._registry = registry
        self._orders = orders
        self._events = events
        self._event_messages = SharedMessages(event_to_proto)

    async def _proto(self, record: StrategyRecord) -> _PB.Strategy:
        return strategy_to_proto(record, list((await self._store.orders(record.strategy_id)).values()))

    # -- creating ---------------------------------------------------------------------------------

    async def CreateStrategy(
        self, request: _PB.CreateStrategyRequest, context: grpc.aio.ServicerContext
    ) -> _PB.Strategy:
        me = caller()
        client_id = validation.client_id("client_strategy_id", request.client_strategy_id)
        name = validation.text("name", request.name, limit=100)
        kind = request.WhichOneof("params")
        if kind is None:
            raise InvalidArgument("params", "required: one of bracket, trailing_stop, schedule, mtm_guard")
        asked = getattr(request, kind)
        known = await self._store.get_by_client_id(client_id)
        if known is not None:
            return await self._proto(self._same(known, kind, asked, me))
        params, accounts = await self._validate(kind, asked, me)
        record, created = await self._store.insert(
            f"S{new_order_id()}", client_id, me.user, kind, name, params, accounts, self._orders.head
        )
        if not created:  # a concurrent create with the same id won
            return await self._proto(self._same(record, kind, asked, me))
        self._runner.launch(record)
        return await self._proto(record)

    @staticmethod
    def _same(known: StrategyRecord, kind: str, asked: Any, me: Principal) -> StrategyRecord:
        """A retry gets its original back; another user's id, or the same id for other params, is refused
        without showing the strategy that holds it."""
        if known.owner != me.user:
            raise FailedPrecondition(f"client_strategy_id {known.client_strategy_id} is already in use; use a new id")
        if known.kind != kind or _params_out(kind, known.params) != asked:
            raise FailedPrecondition(
                f"client_strategy_id {known.client_strategy_id} was already used for a different strategy; use a new id"
            )
        return known

    async def _validate(self, kind: str, asked: Any, me: Principal) -> tuple[dict[str, Any], list[str]]:
        """The params model's JSON, with what the logic needs from the daemon filled in, and every account the
        strategy touches, each one the caller may use."""
        raw = _params_in(kind, asked)
        accounts: list[str]
        if kind in ("bracket", "schedule"):
            spec_field = "entry" if kind == "bracket" else "order"
            spec = getattr(asked, spec_field)
            found = self._check_spec(f"{kind}.{spec_field}", spec, me)
            accounts = [spec.account]
            if kind == "bracket":
                raw["tick_size"] = str(found)
        elif kind == "trailing_stop":
            account = self._account(f"{kind}.account", asked.account, me)
            instrument = validation.instrument(f"{kind}.instrument", asked.instrument, self._gw.lookup)
            raw["tick_size"] = str(instrument.tick_size)
            raw["position"] = await self._position(account, instrument.id, raw["product"])
            accounts = [account]
        else:
            accounts = self._scope_accounts(kind, asked.scope, me)
        try:
            params = strategies.PARAMS[kind].model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in (kind, *first["loc"]))
            raise InvalidArgument(where, first["msg"].removeprefix("Value error, ")) from None
        return params.model_dump(mode="json"), accounts

    def _account(self, field: str, account: str, me: Principal) -> str:
        validation.text(field, account, required=True)
        return self._gw.account(field, account, me).settings.id

    def _check_spec(self, field: str, spec: _PB.OrderSpec, me: Principal) -> Decimal:
        """The order as PlaceOrder would check it (instrument, lot, tick, prices for its type); the tick size."""
        self._account(f"{field}.account", spec.account, me)
        request = orders_pb2.PlaceOrderRequest(
            client_order_id="check", account=spec.account, instrument=spec.instrument, side=spec.side,
            quantity=spec.quantity, product=spec.product, order_type=spec.order_type, price=spec.price,
            trigger_price=spec.trigger_price,
        )  # fmt: skip
        try:
            checked = validation.place_request(request, spec.account, self._gw.lookup)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{field}.{exc.field}", exc.problem) from None
        found = self._gw.lookup(checked.instrument)
        assert found is not None, "validation only passes known instruments"
        return found.tick_size

    def _scope_accounts(self, kind: str, scope: common_pb2.Scope, me: Principal) -> list[str]:
        if scope.kind not in (common_pb2.SCOPE_KIND_GROUP, common_pb2.SCOPE_KIND_ACCOUNT):
            return []  # the params model refuses any other scope, naming the field
        return self._registry.usable_scope_accounts(convert.scope_from_proto(scope), me, f"{kind}.scope.name")

    async def _position(self, account: str, instrument: InstrumentId, product: str | None) -> int:
        """The net quantity the daemon's ledger holds in the account, instrument and product."""
        states: list[PositionState] = await self._gw.call(
            "ledger", "positions", self._gw.ledger.positions.remote([account])
        )
        return sum(s.quantity for s in states if s.instrument == instrument and s.product.value == product)

    # -- reading ----------------------------------------------------------------------------------

    async def _visible(self, strategy_id: str) -> StrategyRecord:
        validation.text("id", strategy_id, required=True)
        record = await self._store.get(strategy_id)
        if record is None:
            raise NotFound(f"strategy {strategy_id} not found")
        me = caller()
        if not may_see(record, me):
            raise PermissionDenied(f"strategy {strategy_id} is not {me.user}'s")
        return record

    async def _controlled(self, strategy_id: str) -> StrategyRecord:
        record = await self._visible(strategy_id)
        me = caller()
        if record.owner != me.user and me.role is not Role.ADMIN:
            raise PermissionDenied(f"only {record.owner} (its owner) or an admin may change strategy {strategy_id}")
        return record

    async def ListStrategies(
        self, request: _PB.ListStrategiesRequest, context: grpc.aio.ServicerContext
    ) -> _PB.ListStrategiesResponse:
        me = caller()
        records = [r for r in await self._store.list(active_only=request.active_only) if may_see(r, me)]
        return _PB.ListStrategiesResponse(strategies=[await self._proto(r) for r in records])

    async def GetStrategy(self, request: _PB.GetStrategyRequest, context: grpc.aio.ServicerContext) -> _PB.Strategy:
        return await self._proto(await self._visible(request.id))

    # -- controlling ------------------------------------------------------------------------------

    async def PauseStrategy(self, request: _PB.GetStrategyRequest, context: grpc.aio.ServicerContext) -> _PB.Strategy:
        record = await self._controlled(request.id)
        return await self._proto(await self._runner.pause(record, caller().user))

    async def ResumeStrategy(self, request: _PB.GetStrategyRequest, context: grpc.aio.ServicerContext) -> _PB.Strategy:
        record = await self._controlled(request.id)
        return await self._proto(await self._runner.resume(record, caller().user))

    async def StopStrategy(self, request: _PB.GetStrategyRequest, context: grpc.aio.ServicerContext) -> _PB.Strategy:
        record = await self._controlled(request.id)
        return await self._proto(await self._runner.stop_strategy(record, caller()))

    async def StreamStrategyEvents(
        self, request: _PB.StreamStrategyEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[_PB.StrategyEvent]:
        if request.HasField("after_sequence") and request.after_sequence < 0:
            raise InvalidArgument("after_sequence", "must be 0 or more")
        after = request.after_sequence if request.HasField("after_sequence") else None
        if request.strategy_id:
            wanted = (await self._visible(request.strategy_id)).strategy_id
            async for event in self._events.follow(context, after, lambda e: e.strategy_id == wanted):
                yield self._event_messages(event)
            return
        me = caller()
        seen: dict[str, bool] = {}
        async for event in self._events.follow(context, after):
            if event.strategy_id not in seen:
                record = await self._store.get(event.strategy_id)
                seen[event.strategy_id] = record is not None and may_see(record, me)
            if seen[event.strategy_id]:
                yield self._event_messages(event)
