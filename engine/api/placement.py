"""From a PlaceOrder request to orders at brokers: the account (standard) or the routing decision
(orchestrator), freeze-quantity slices, legs sent in parallel, and failover of legs whose broker was
unreachable. The decisions themselves are pure (engine.routing); this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import TypeAdapter

from engine.api import validation
from engine.api.coalesce import Coalescer
from engine.api.gateway import Gateway
from engine.api.metrics import ROUTED_LEGS
from engine.api.registry import AccountRegistry
from engine.api.risk_check import PreTradeRisk
from engine.api.trading import TradingStates
from engine.config import RoutingSettings
from engine.domain import Instrument, Order, OrderRequest, OrderStatus
from engine.domain.accounts import Submission
from engine.domain.ids import new_order_id
from engine.domain.routed import RoutedOrder, aggregate, leg_client_id
from engine.domain.sessions import TradingSessions
from engine.errors import ApiError, FailedPrecondition, InvalidArgument, PermissionDenied
from engine.ledger.charges import instrument_kind
from engine.risk import RiskLimits, RiskViolation
from engine.risk.states import TradingState
from engine.routing import (
    Hold,
    NoRoute,
    OrderShape,
    Reservations,
    RouteDecision,
    RoutingMode,
    candidate,
    claim,
    route,
    slices,
    standard,
)
from engine.security.principal import Principal
from engine.security.tokens import Role
from engine.store.routed import RoutedOrderStore
from trademaster.v1 import orders_pb2

log = logging.getLogger(__name__)
_DECISION_JSON = TypeAdapter(RouteDecision)
_UNPACED_BATCH = 64  # orders in one batch to an account without a pace (paper only)
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
    last_price: Decimal | None  # the market as the gateway knows it, for accounts whose snapshot has no mark


@dataclass(frozen=True, slots=True)
class Working:
    """What a trading state counts besides an order, per account (REDUCING accounts only), read from the
    database: its open orders on the order's side (TradingStates.working), and the orders behind its unsynced
    holds that had ended when read, with what they filled (a cancelled one will not fill further);
    client order id -> units."""

    open: Mapping[str, Mapping[str, int]]
    ended: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    decision: RouteDecision
    legs: tuple[Order, ...] = ()
    duplicate: bool = False


class Placement:
    def __init__(
        self,
        gateway: Gateway,
        routed: RoutedOrderStore,
        settings: RoutingSettings,
        registry: AccountRegistry,
        states: TradingStates,
        limits: Mapping[str, RiskLimits],
    ) -> None:
        """`registry` has the live groups routing draws from; `states` the trading states every order passes;
        `limits` are each account's pre-trade risk limits, already layered (Settings.risk_limits)."""
        self._gw = gateway
        self._routed = routed
        self._settings = settings
        self._registry = registry
        self._states = states
        self._holds = Reservations()
        self._risk = PreTradeRisk(gateway, limits, self._holds, TradingSessions())
        self._submitters: dict[str, Callable[[OrderRequest], Awaitable[Submission]]] = {}

    # -- deciding ---------------------------------------------------------------------------------

    def _mode(self, req: orders_pb2.PlaceOrderRequest) -> RoutingMode:
        if req.account:
            return RoutingMode.STANDARD  # a named account always wins
        if req.mode not in (orders_pb2.ROUTING_MODE_UNSPECIFIED, *_MODES):
            raise InvalidArgument("mode", f"unknown routing mode {req.mode}")
        return _MODES.get(req.mode, self._settings.mode)

    def _pool(self, group: str, caller: Principal) -> tuple[str, ...]:
        """The accounts routing may use: the group's (or all), and of those only the caller's own."""
        if not group:
            mine = caller.visible(self._gw.accounts)
            if not mine:
                raise PermissionDenied(f"{caller.user} owns no accounts to route to")
            return tuple(mine)
        members = self._registry.members(group)
        mine = caller.visible(members)
        if not mine:
            raise PermissionDenied(f"none of group {group}'s accounts ({', '.join(members)}) is {caller.user}'s")
        return tuple(mine)

    async def plan(self, req: orders_pb2.PlaceOrderRequest, caller: Principal) -> Plan:
        """Validate the request, decide where it goes and check its legs against the limits, sending nothing."""
        plan = await self._decide(req, caller)
        pieces = self._pieces(plan, plan.decision)
        self._check(plan, pieces, await self._working(plan.request, [a for a, _ in pieces]))
        return plan

    async def _decide(self, req: orders_pb2.PlaceOrderRequest, caller: Principal) -> Plan:
        mode = self._mode(req)
        group = validation.text("group", req.group)
        if mode is RoutingMode.STANDARD:
            if group:
                raise InvalidArgument("group", "only used in orchestrator mode (name no account, or set mode)")
            handle = self._gw.account("account", validation.text("account", req.account), caller)
            request = validation.place_request(req, handle.settings.id, self._gw.lookup, strategy=caller.strategy)
            found = self._instrument(request)
            last = await self._last_price(request, [handle.settings.id], to_value=False)
            shape = self._shape(request, found, price=request.price or last or found.last_price)
            why = "the order names this account" if req.account else "the default account (standard mode)"
            return Plan(request, found, shape, standard(handle.settings.id, request.quantity, why), (), last)
        pool = self._pool(group, caller)
        request = validation.place_request(req, "", self._gw.lookup, strategy=caller.strategy)
        found = self._instrument(request)
        last = await self._last_price(request, pool, to_value=True)
        shape = self._shape(request, found, price=request.price or last or found.last_price)
        return Plan(request, found, shape, self._route(request, shape, found, pool, last, {}), pool, last)

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

    async def _last_price(self, request: OrderRequest, pool: Sequence[str], *, to_value: bool) -> Decimal | None:
        """The instrument's last price: any pool account's synced mark, else one account's quote (an actor call),
        asked only when a market order being routed needs valuing (`to_value`) or a risk limit reads it."""
        for name in pool:
            mark = self._gw.snapshot(name).marks.get(request.instrument)
            if mark is not None:
                return mark
        if not (to_value and request.price is None) and not self._risk.uses_last_price(request, pool):
            return None
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
        return None

    def _route(
        self,
        request: OrderRequest,
        shape: OrderShape,
        found: Instrument,
        pool: Sequence[str],
        last_price: Decimal | None,
        excluded: Mapping[str, str],
    ) -> RouteDecision:
        """Route among the pool; `excluded` maps accounts already ruled out for this order to why.

        An account whose risk limits refuse even one lot is left out with the violation as its reason, so the
        order goes where it is allowed. Routing does not shrink or split an order to fit size limits (quantity,
        value, position): the legs it chose are checked afterwards, and one refused leg refuses the whole order.
        """
        candidates = []
        for name in pool:
            snap = self._gw.snapshot(name)
            held = self._holds.reserved(name, shape.instrument, snap.funds_at)
            preference = self._gw.accounts[name].settings.routing_preference
            found_candidate = candidate(snap, shape, held, preference)
            lot = replace(request, account=name, quantity=found.lot_size)
            why = (
                excluded.get(name)
                or found_candidate.excluded
                or self._states.refusal(lot, snap, {})
                or self._risk.refusal(request, found, last_price, name)
            )
            candidates.append(replace(found_candidate, excluded=why))
        return route(shape, candidates, self._settings.weights, instrument_kind(found.id))

    # -- placing ----------------------------------------------------------------------------------

    async def place(self, req: orders_pb2.PlaceOrderRequest, caller: Principal) -> Placed:
        if self._mode(req) is RoutingMode.ORCHESTRATOR:
            # A retry must find its original before routing again, which would see its own legs' effects.
            known = await self._routed.get_by_client_id(validation.text("client_order_id", req.client_order_id))
            if known is not None:
                asked = validation.place_request(req, "", self._gw.lookup, strategy=caller.strategy)
                _same_request(known, asked, caller)
                return await self._duplicate(known)
        plan = await self._decide(req, caller)
        pieces = self._pieces(plan, plan.decision)
        single = plan.decision.mode is RoutingMode.STANDARD and len(pieces) == 1
        working = await self._working(plan.request, [a for a, _ in pieces])
        try:
            holds = self._claim(plan, pieces, working)
        except RiskViolation:
            # A retry gets its original back even when the limits, which now count that original, refuse.
            if single and await self._gw.store.get_by_client_id(plan.request.client_order_id) is not None:
                holds = [self._holds.hold(claim(plan.request, plan.shape.price))]
            elif not single and (known := await self._routed.get_by_client_id(plan.request.client_order_id)):
                _same_request(known, plan.request, caller)
                return await self._duplicate(known)
            else:
                raise
        if single:
            sent = await self._submit(plan.request, holds[0], plan.decision.mode)
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
            placed_by=caller.user,
        )
        try:
            parent, created = await self._routed.insert(parent, _DECISION_JSON.dump_python(plan.decision, mode="json"))
            if not created:
                _same_request(parent, plan.request, caller)
                return await self._duplicate(parent)
            legs = await self._send_legs(parent, plan, pieces, holds)
        finally:
            self._release(holds)  # whatever was never sent
        return Placed(aggregate(parent, legs), plan.decision, tuple(legs))

    async def _duplicate(self, parent: RoutedOrder) -> Placed:
        legs = await self._gw.store.legs(parent.order_id)
        first = _DECISION_JSON.validate_python((await self._routed.decisions(parent.order_id))[0])
        return Placed(aggregate(parent, legs), first, tuple(legs), duplicate=True)

    @staticmethod
    def _pieces(plan: Plan, decision: RouteDecision) -> list[tuple[str, int]]:
        """The orders a decision makes: each leg sliced at the freeze quantity, as (account, quantity)."""
        cut = plan.instrument.freeze_quantity, plan.instrument.lot_size
        return [(leg.account, q) for leg in decision.legs for q in slices(leg.quantity, *cut)]

    async def _working(self, request: OrderRequest, accounts: Sequence[str]) -> Working:
        """Per account, its open orders on the order's side and the ended orders behind its unsynced holds."""
        opened: dict[str, Mapping[str, int]] = {}
        ended: dict[str, dict[str, int]] = {}
        for account in dict.fromkeys(accounts):
            opened[account] = await self._states.working(account, request.instrument, request.side, request.product)
            for hold in self._unsynced(account, request):
                order = await self._gw.store.get_by_client_id(hold.client_order_id)
                if order is not None and order.is_terminal:
                    ended.setdefault(account, {})[hold.client_order_id] = order.filled_quantity
        return Working(opened, ended)

    def _unsynced(self, account: str, request: OrderRequest) -> list[Hold]:
        """The account's holds on the request's side of its position that no sync has shown yet (REDUCING only,
        the one state that counts them)."""
        if self._states.effective(account)[0] is not TradingState.REDUCING:
            return []
        same = (request.instrument, request.product)
        holds = self._holds.unsynced(account, self._gw.snapshot(account).funds_at)
        return [h for h in holds if (h.instrument, h.product) == same and h.quantity * request.side.sign > 0]

    def _check(self, plan: Plan, pieces: Sequence[tuple[str, int]], working: Working) -> None:
        """Check the pieces against each account's trading state, then its limits; the first refusal refuses all.

        A trading state sees each account's pieces together, with its open orders (`working`) and every order its
        holds show on the same side that no sync has shown yet: on its way to the broker, acknowledged while the
        rows were read, or filled since the last sync. Such an order counts its holds' whole quantity in place of
        its rows (a routed order's legs, "<client id>/<n>", included), since no snapshot includes any fill of it
        yet; one that had ended when read counts what it filled, a cancelled order's rest never will.
        """
        request = plan.request
        per_account: dict[str, int] = {}
        for account, quantity in pieces:
            per_account[account] = per_account.get(account, 0) + quantity
        for account, quantity in per_account.items():
            ended = working.ended.get(account, {})
            unread: dict[str, int] = {}
            for h in self._unsynced(account, request):
                units = min(abs(h.quantity), ended.get(h.client_order_id, abs(h.quantity)))
                unread[h.client_order_id] = unread.get(h.client_order_id, 0) + units
            rows = working.open.get(account, {})
            read = {c: q for c, q in rows.items() if c.partition("/")[0] not in unread}
            leg = replace(request, account=account, quantity=quantity)
            self._states.check_order(leg, self._gw.snapshot(account), {**read, **unread})
        self._risk.check(request, plan.instrument, plan.last_price, pieces)

    def _claim(self, plan: Plan, pieces: Sequence[tuple[str, int]], working: Working) -> list[Hold]:
        """Check every piece (_check), then hold what each claims.

        Nothing is awaited in between, so no other order is checked against a state that misses these pieces.
        """
        self._check(plan, pieces, working)
        return [
            self._holds.hold(claim(replace(plan.request, account=a, quantity=q), plan.shape.price)) for a, q in pieces
        ]

    def _release(self, holds: Sequence[Hold]) -> None:
        """Drop the holds of orders that were never sent (an error or a cancellation came first)."""
        for hold in holds:
            if hold.settled_at is None:
                self._holds.settle(hold, None)

    async def _send_legs(
        self, parent: RoutedOrder, plan: Plan, pieces: list[tuple[str, int]], holds: list[Hold]
    ) -> list[Order]:
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
            try:
                outcomes = await asyncio.gather(
                    *(self._submit(r, h, plan.decision.mode) for r, h in zip(requests, holds, strict=True)),
                    return_exceptions=True,
                )
            finally:
                self._release(holds)
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
            pieces, holds = await self._reroute(parent, plan, left, unreachable) if left else ([], [])
        if not legs and first_error is not None:
            raise first_error  # nothing was placed: the caller hears why
        return legs

    async def _reroute(
        self, parent: RoutedOrder, plan: Plan, quantity: int, unreachable: list[str]
    ) -> tuple[list[tuple[str, int]], list[Hold]]:
        """Route what never reached its broker among the other accounts; a leg an account's limits refuse
        rules that account out too, and routing tries again without it."""
        if plan.decision.mode is RoutingMode.STANDARD:
            return [], []  # the named account was the user's choice; it is not silently replaced
        shape = replace(plan.shape, quantity=quantity)
        excluded = dict.fromkeys(unreachable, "its broker was unreachable for this order")
        working = await self._working(plan.request, plan.candidates)
        while True:
            try:
                decision = self._route(plan.request, shape, plan.instrument, plan.candidates, plan.last_price, excluded)
            except NoRoute as exc:
                log.warning("routed order %s: %d left unplaced: %s", parent.order_id, quantity, exc)
                return [], []
            pieces = self._pieces(plan, decision)
            try:
                holds = self._claim(plan, pieces, working)
                break
            except RiskViolation as exc:
                excluded[exc.account] = exc.reason
        try:
            await self._routed.add_decision(parent.order_id, _DECISION_JSON.dump_python(decision, mode="json"))
        except BaseException:
            self._release(holds)
            raise
        log.info("routed order %s: re-routing %d: %s", parent.order_id, quantity, decision.reason)
        return pieces, holds

    async def _submit(self, request: OrderRequest, hold: Hold, mode: RoutingMode) -> Submission:
        """One order to one account. Its hold stays until the account's next sync shows the order, or goes at
        once when nothing new reached the broker (refused before storing, rejected, or a duplicate)."""
        acked: datetime | None = None
        try:
            sent = await self._submitter(request.account)(request)
            if not sent.duplicate and sent.order.status is not OrderStatus.REJECTED:
                acked = datetime.now(UTC)  # it may be using margin now: hold until a sync shows it
            self._gw.note_submission(request.account, sent)
            self._risk.note(request.account, sent)
            ROUTED_LEGS.labels(request.account, mode.value).inc()
            return sent
        finally:
            self._holds.settle(hold, acked)

    def _submitter(self, account: str) -> Callable[[OrderRequest], Awaitable[Submission]]:
        """The account's way in: one call per order for a paced account, orders arriving together as one call for
        an unpaced one (engine/api/coalesce.py says why)."""
        submitter = self._submitters.get(account)
        if submitter is None:
            send = functools.partial(self._submit_many, account)
            if self._gw.accounts[account].settings.orders_per_second:
                submitter = functools.partial(_alone, send)
            else:
                submitter = Coalescer(send, _UNPACED_BATCH)
            self._submitters[account] = submitter
        return submitter

    async def _submit_many(self, account: str, requests: list[OrderRequest]) -> list[Submission | BaseException]:
        actor = self._gw.accounts[account].actor
        return await self._gw.call("account", "submit", actor.submit_many.remote(requests))


async def _alone(
    send: Callable[[list[OrderRequest]], Awaitable[list[Submission | BaseException]]], request: OrderRequest
) -> Submission:
    [result] = await send([request])
    if isinstance(result, BaseException):
        raise result
    return result


def _same_request(parent: RoutedOrder, request: OrderRequest, caller: Principal) -> None:
    """A retry must be the caller's own and the same order; reusing an id for another order is almost always
    a client bug. Neither refusal shows the holder's order: the id may be another user's."""
    if caller.role is not Role.ADMIN and parent.placed_by != caller.user:
        raise FailedPrecondition(f"client_order_id {parent.client_order_id} is already in use; use a new id")
    mine = (parent.instrument, parent.side, parent.quantity, parent.product, parent.order_type, parent.price)
    theirs = (request.instrument, request.side, request.quantity, request.product, request.order_type, request.price)
    if mine != theirs:
        raise FailedPrecondition(
            f"client_order_id {parent.client_order_id} was already used for a different order; use a new id"
        )
