"""From a PlaceOrder request to orders at brokers: the account (standard) or the routing decision
(orchestrator), freeze-quantity slices, legs sent in parallel, and failover of legs whose broker was
unreachable. The decisions themselves are pure (engine.routing); this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import TypeAdapter

from engine.api import validation
from engine.api.gateway import Gateway
from engine.api.metrics import ROUTED_LEGS
from engine.config import RoutingSettings
from engine.domain import Instrument, Order, OrderRequest, OrderStatus, Product, Side
from engine.domain.accounts import Submission
from engine.domain.ids import new_order_id
from engine.domain.margin import margin_per_unit
from engine.domain.routed import RoutedOrder, aggregate, leg_client_id
from engine.errors import ApiError, FailedPrecondition, InvalidArgument
from engine.ledger.charges import instrument_kind
from engine.routing import (
    Hold,
    NoRoute,
    OrderShape,
    Reservations,
    RouteDecision,
    RoutingMode,
    candidate,
    route,
    slices,
    standard,
)
from engine.store.routed import RoutedOrderStore
from trademaster.v1 import orders_pb2

log = logging.getLogger(__name__)
_DECISION_JSON = TypeAdapter(RouteDecision)
_MODES = {
    orders_pb2.ROUTING_MODE_STANDARD: RoutingMode.STANDARD,
    orders_pb2.ROUTING_MODE_ORCHESTRATOR: RoutingMode.ORCHESTRATOR,
}


@dataclass(frozen=True, slots=True)
class Plan:
    request: OrderRequest  # account is empty until a leg is addressed
    instrument: Instrument
    shape: OrderShape
    decision: RouteDecision
    candidates: tuple[str, ...]  # the accounts routing may use (re-routes included)


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    decision: RouteDecision
    legs: tuple[Order, ...] = ()
    duplicate: bool = False


class Placement:
    def __init__(
        self, gateway: Gateway, routed: RoutedOrderStore, settings: RoutingSettings, groups: dict[str, list[str]]
    ) -> None:
        self._gw = gateway
        self._routed = routed
        self._settings = settings
        self._groups = groups
        self._holds = Reservations()

    # -- deciding ---------------------------------------------------------------------------------

    def _mode(self, req: orders_pb2.PlaceOrderRequest) -> RoutingMode:
        if req.account:
            return RoutingMode.STANDARD  # a named account always wins
        if req.mode not in (orders_pb2.ROUTING_MODE_UNSPECIFIED, *_MODES):
            raise InvalidArgument("mode", f"unknown routing mode {req.mode}")
        return _MODES.get(req.mode, self._settings.mode)

    def _pool(self, group: str) -> tuple[str, ...]:
        if not group:
            return tuple(self._gw.accounts)
        members = self._groups.get(group)
        if members is None:
            known = ", ".join(sorted(self._groups)) or "none are configured"
            raise InvalidArgument("group", f"unknown account group {group!r} (groups: {known})")
        return tuple(members)

    async def plan(self, req: orders_pb2.PlaceOrderRequest) -> Plan:
        """Validate the request and decide where it goes, without sending anything."""
        mode = self._mode(req)
        group = validation.text("group", req.group)
        if mode is RoutingMode.STANDARD:
            if group:
                raise InvalidArgument("group", "only used in orchestrator mode (name no account, or set mode)")
            handle = self._gw.account("account", validation.text("account", req.account))
            request = validation.place_request(req, handle.settings.id, self._gw.lookup)
            found = self._instrument(request)
            shape = self._shape(request, found, price=request.price or found.last_price)
            why = "the order names this account" if req.account else "the default account (standard mode)"
            return Plan(request, found, shape, standard(handle.settings.id, request.quantity, why), ())
        pool = self._pool(group)
        request = validation.place_request(req, "", self._gw.lookup)
        found = self._instrument(request)
        shape = self._shape(request, found, price=await self._price(request, found, pool))
        return Plan(request, found, shape, self._route(shape, found, pool, excluded=()), pool)

    def _instrument(self, request: OrderRequest) -> Instrument:
        found = self._gw.lookup(request.instrument)
        assert found is not None, "validation only passes known instruments"
        return found

    @staticmethod
    def _shape(request: OrderRequest, found: Instrument, price: Decimal) -> OrderShape:
        return OrderShape(
            request.instrument,
            request.side,
            request.product,
            request.quantity,
            found.lot_size,
            price,
            found.freeze_quantity,
        )

    async def _price(self, request: OrderRequest, found: Instrument, pool: Sequence[str]) -> Decimal:
        """What values the order: its limit price, else the freshest last price an account knows."""
        if request.price is not None:
            return request.price
        for name in pool:
            mark = self._gw.snapshot(name).marks.get(request.instrument)
            if mark is not None:
                return mark
        for name in pool:
            try:
                quoted = await self._gw.call(
                    "account", "last_price", self._gw.accounts[name].actor.last_price.remote(request.instrument)
                )
            except Exception as exc:  # any account's quote will do; try the next
                log.info("quote of %s from %s failed: %s", request.instrument, name, exc)
                continue
            if quoted is not None:
                return quoted
        return found.last_price  # the instrument master's reference price: better than refusing

    def _route(
        self, shape: OrderShape, found: Instrument, pool: Sequence[str], excluded: Sequence[str]
    ) -> RouteDecision:
        candidates = []
        for name in pool:
            snap = self._gw.snapshot(name)
            held = self._holds.reserved(name, shape.instrument, snap.funds_at)
            preference = self._gw.accounts[name].settings.routing_preference
            found_candidate = candidate(snap, shape, held, preference)
            if name in excluded:
                found_candidate = replace(found_candidate, excluded="its broker was unreachable for this order")
            candidates.append(found_candidate)
        return route(shape, candidates, self._settings.weights, instrument_kind(found.id))

    # -- placing ----------------------------------------------------------------------------------

    async def place(self, req: orders_pb2.PlaceOrderRequest) -> Placed:
        if self._mode(req) is RoutingMode.ORCHESTRATOR:
            # A retry must find its original before routing again, which would see its own legs' effects.
            known = await self._routed.get_by_client_id(validation.text("client_order_id", req.client_order_id))
            if known is not None:
                _same_request(known, validation.place_request(req, "", self._gw.lookup))
                return await self._duplicate(known)
        plan = await self.plan(req)
        pieces = [(leg.account, q) for leg in plan.decision.legs for q in slices(leg.quantity, *self._cut(plan))]
        if plan.decision.mode is RoutingMode.STANDARD and len(pieces) == 1:
            sent = await self._submit(plan.request, plan)
            return Placed(sent.order, plan.decision, duplicate=sent.duplicate)
        parent = RoutedOrder(
            order_id=new_order_id(),
            client_order_id=plan.request.client_order_id,
            instrument=plan.request.instrument,
            side=plan.request.side,
            quantity=plan.request.quantity,
            product=plan.request.product,
            order_type=plan.request.order_type,
            created_at=datetime.now(UTC),
            price=plan.request.price,
            trigger_price=plan.request.trigger_price,
        )
        parent, created = await self._routed.insert(parent, _DECISION_JSON.dump_python(plan.decision, mode="json"))
        if not created:
            _same_request(parent, plan.request)
            return await self._duplicate(parent)
        legs = await self._send_legs(parent, plan, pieces)
        return Placed(aggregate(parent, legs), plan.decision, tuple(legs))

    async def _duplicate(self, parent: RoutedOrder) -> Placed:
        legs = await self._gw.store.legs(parent.order_id)
        first = _DECISION_JSON.validate_python((await self._routed.decisions(parent.order_id))[0])
        return Placed(aggregate(parent, legs), first, tuple(legs), duplicate=True)

    @staticmethod
    def _cut(plan: Plan) -> tuple[int, int]:
        return plan.instrument.freeze_quantity, plan.instrument.lot_size

    async def _send_legs(self, parent: RoutedOrder, plan: Plan, pieces: list[tuple[str, int]]) -> list[Order]:
        """Send every piece at once; pieces that never reached their broker are routed again elsewhere."""
        numbers = itertools.count(1)
        legs: list[Order] = []
        unreachable: list[str] = []
        first_error: Exception | None = None
        while pieces:
            requests = [
                replace(
                    plan.request,
                    client_order_id=leg_client_id(parent.client_order_id, next(numbers)),
                    account=account,
                    quantity=quantity,
                    parent_order_id=parent.order_id,
                )
                for account, quantity in pieces
            ]
            outcomes = await asyncio.gather(*(self._submit(r, plan) for r in requests), return_exceptions=True)
            left = 0
            for request, outcome in zip(requests, outcomes, strict=True):
                if isinstance(outcome, Submission):
                    legs.append(outcome.order)
                    if not outcome.unreached:
                        continue
                elif isinstance(outcome, ApiError):
                    first_error = first_error or outcome
                    log.warning("leg %s not placed at %s: %s", request.client_order_id, request.account, outcome)
                else:
                    raise outcome
                left += request.quantity
                unreachable.append(request.account)
            pieces = await self._reroute(parent, plan, left, unreachable) if left else []
        if not legs and first_error is not None:
            raise first_error  # nothing was placed: the caller hears why
        return legs

    async def _reroute(
        self, parent: RoutedOrder, plan: Plan, quantity: int, unreachable: list[str]
    ) -> list[tuple[str, int]]:
        if plan.decision.mode is RoutingMode.STANDARD:
            return []  # the named account was the user's choice; it is not silently replaced
        shape = replace(plan.shape, quantity=quantity)
        try:
            decision = self._route(shape, plan.instrument, plan.candidates, excluded=unreachable)
        except NoRoute as exc:
            log.warning("routed order %s: %d left unplaced: %s", parent.order_id, quantity, exc)
            return []
        await self._routed.add_decision(parent.order_id, _DECISION_JSON.dump_python(decision, mode="json"))
        log.info("routed order %s: re-routing %d: %s", parent.order_id, quantity, decision.reason)
        return [(leg.account, q) for leg in decision.legs for q in slices(leg.quantity, *self._cut(plan))]

    async def _submit(self, request: OrderRequest, plan: Plan) -> Submission:
        """One order to one account, holding the funds or shares it claims until the account's next sync."""
        hold = self._hold(request, plan) if plan.decision.mode is RoutingMode.ORCHESTRATOR else None
        handle = self._gw.accounts[request.account]
        acked: datetime | None = None
        try:
            sent: Submission = await self._gw.call("account", "submit", handle.actor.submit.remote(request))
            if sent.order.status is not OrderStatus.REJECTED:
                acked = datetime.now(UTC)  # it may be using margin now: hold until a sync shows it
            self._gw.note_submission(request.account, sent)
            ROUTED_LEGS.labels(request.account, plan.decision.mode.value).inc()
            return sent
        finally:
            if hold is not None:
                self._holds.settle(hold, acked)

    def _hold(self, request: OrderRequest, plan: Plan) -> Hold:
        """Only routing reads holds, so only routed orders take them; a sync soon shows the rest anyway."""
        delivery_sell = request.product is Product.CNC and request.side is Side.SELL
        funds = Decimal(0) if delivery_sell else request.quantity * margin_per_unit(request.product, plan.shape.price)
        return self._holds.hold(request.account, request.instrument, funds, request.quantity if delivery_sell else 0)


def _same_request(parent: RoutedOrder, request: OrderRequest) -> None:
    """A retry must be the same order; reusing an id for another order is almost always a client bug."""
    mine = (parent.instrument, parent.side, parent.quantity, parent.product, parent.order_type, parent.price)
    theirs = (request.instrument, request.side, request.quantity, request.product, request.order_type, request.price)
    if mine != theirs:
        raise FailedPrecondition(
            f"client_order_id {parent.client_order_id} was already used for a different order"
            f" ({parent.order_id}); use a new id for a new order"
        )
