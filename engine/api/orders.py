"""OrderService: place, change and follow orders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc

from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.events import EventHub, SharedMessages
from engine.api.gateway import Gateway
from engine.api.metrics import ORDERS
from engine.api.order_commands import OrderCommands
from engine.api.placement import Placement
from engine.domain import InstrumentId, Order
from engine.domain.routed import RoutedOrder, aggregate
from engine.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from engine.routing import RouteDecision
from engine.security.tokens import Role
from engine.store.routed import RoutedOrderStore
from trademaster.v1 import orders_pb2, orders_pb2_grpc

_DEFAULT_LIMIT = 500
_MAX_LIMIT = 5000


class OrderService(orders_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        gateway: Gateway,
        hub: EventHub,
        placement: Placement,
        routed: RoutedOrderStore,
        commands: OrderCommands,
    ) -> None:
        self._gw = gateway
        self._hub = hub
        self._placement = placement
        self._routed = routed
        self._commands = commands
        self._event_messages = SharedMessages(lambda e: convert.event_to_proto(e, gateway.broker_of(e.account)))

    def _proto(self, order: Order) -> orders_pb2.Order:
        return convert.order_to_proto(order, self._gw.broker_of(order.account))

    def _route_proto(self, decision: RouteDecision, instrument: InstrumentId) -> orders_pb2.RouteDecision:
        found = self._gw.lookup(instrument)
        assert found is not None, "a decided order's instrument is always known"
        return convert.route_to_proto(decision, found.freeze_quantity, found.lot_size)

    async def PlaceOrder(
        self, request: orders_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.PlaceOrderResponse:
        try:
            placed = await self._placement.place(request, caller())
        except InvalidArgument:
            ORDERS.labels(request.account or "-", "invalid").inc()
            raise
        order = placed.order
        if placed.duplicate and not self._may_see(order, placed.legs):
            # Another user's order holds this id: say so without showing it.
            raise FailedPrecondition(f"client_order_id {order.client_order_id} is already in use; use a new id")
        ORDERS.labels(order.account or "routed", "duplicate" if placed.duplicate else order.status.value.lower()).inc()
        return orders_pb2.PlaceOrderResponse(
            order=self._proto(order),
            duplicate=placed.duplicate,
            route=self._route_proto(placed.decision, order.instrument),
            legs=[self._proto(leg) for leg in placed.legs],
        )

    async def PreviewRoute(
        self, request: orders_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.RouteDecision:
        plan = await self._placement.plan(request, caller())
        return self._route_proto(plan.decision, plan.request.instrument)

    @staticmethod
    def _may_see(order: Order, legs: Sequence[Order], placed_by: str = "") -> bool:
        """A plain order by its account; a routed one if the caller placed it or may use every leg's account."""
        me = caller()
        if order.account:
            return me.may_use(order.account)
        if me.role is Role.ADMIN or placed_by == me.user:
            return True
        return bool(legs) and all(me.may_use(g.account) for g in legs)

    def _require_visible(self, order: Order, legs: Sequence[Order] = (), placed_by: str = "") -> Order:
        if not self._may_see(order, legs, placed_by):
            where = f"account {order.account}" if order.account else "accounts"
            raise PermissionDenied(f"order {order.order_id} is on {where} that {caller().user} may not use")
        return order

    def _scope(self, account: str) -> frozenset[str] | None:
        """The accounts a read covers: the named one, else the caller's (None: all, for an admin)."""
        me = caller()
        if account:
            self._gw.require_account(account, me)
            return frozenset({account})
        return None if me.role is Role.ADMIN else frozenset(me.visible(self._gw.accounts))

    async def _routed_view(self, parent: RoutedOrder | None) -> Order | None:
        if parent is None:
            return None
        legs = await self._gw.store.legs(parent.order_id)
        return self._require_visible(aggregate(parent, legs), legs, parent.placed_by)

    async def _owned(self, order_id: str) -> Order:
        validation.text("order_id", order_id, required=True)
        order = await self._gw.store.get(order_id)
        if order is not None:
            return self._require_visible(order)
        routed = await self._routed_view(await self._routed.get(order_id))
        if routed is None:
            raise NotFound(f"order {order_id} not found")
        return routed

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        order_id = validation.text("order_id", request.order_id, required=True)
        order = await self._gw.store.get(order_id)
        if order is None:
            return self._proto(await self._cancel_legs(await self._owned(order_id)))
        return self._proto(await self._commands.cancel(order_id, caller()))

    async def _cancel_legs(self, parent: Order) -> Order:
        """Cancel a routed order: every leg still working, at once; the parent's view afterwards."""
        live = [leg for leg in await self._gw.store.legs(parent.order_id) if not leg.is_terminal]
        for leg in live:
            caller().require(leg.account)
        outcomes = await asyncio.gather(
            *(
                self._gw.call("account", "cancel", self._gw.accounts[leg.account].actor.cancel.remote(leg.order_id))
                for leg in live
            ),
            return_exceptions=True,
        )
        refused = [f"{leg.order_id}: {o}" for leg, o in zip(live, outcomes, strict=True) if isinstance(o, Exception)]
        if refused:
            raise FailedPrecondition(f"some legs of {parent.order_id} could not be cancelled: {'; '.join(refused)}")
        return await self._owned(parent.order_id)

    async def ModifyOrder(
        self, request: orders_pb2.ModifyOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        order_id = validation.text("order_id", request.order_id, required=True)
        order = await self._gw.store.get(order_id)
        if order is None:
            await self._owned(order_id)  # NOT_FOUND, unless it is a routed order
            raise FailedPrecondition(f"{order_id} is a routed order: modify its legs one by one")
        found = self._gw.lookup(order.instrument)
        assert found is not None, "an accepted order's instrument is always known"
        self._gw.require_account(order.account, caller())  # before validating: the order is not the caller's to probe
        change = validation.modify_request(request, order.order_type, found)
        return self._proto(await self._commands.modify(order_id, change, caller()))

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        key = request.WhichOneof("key")
        if key == "client_order_id":
            value = validation.text("client_order_id", request.client_order_id, required=True, limit=80)
            try:
                plain = await self._gw.store.get_by_client_id(value)
                order = (
                    self._require_visible(plain)
                    if plain
                    else await self._routed_view(await self._routed.get_by_client_id(value))
                )
            except PermissionDenied:
                order = None  # client ids are guessable: another user's order looks like no order
            if order is None:
                raise NotFound(f"no order with client_order_id {value}")
            return self._proto(order)
        if key is None:
            raise InvalidArgument("order_id", "required (or client_order_id)")
        return self._proto(await self._owned(request.order_id))

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListOrdersResponse:
        accounts = self._scope(validation.text("account", request.account))
        statuses = [convert.status_from_proto(s) for s in request.statuses]
        if None in statuses:
            raise InvalidArgument("statuses", "contains an unknown or unspecified status")
        if request.limit < 0 or request.limit > _MAX_LIMIT:
            raise InvalidArgument("limit", f"must be between 0 and {_MAX_LIMIT}")
        orders = await self._gw.store.list(
            accounts=accounts,
            statuses=statuses,  # type: ignore[arg-type]
            open_only=request.open_only,
            limit=request.limit or _DEFAULT_LIMIT,
        )
        return orders_pb2.ListOrdersResponse(orders=[self._proto(o) for o in orders])

    async def StreamOrderEvents(
        self, request: orders_pb2.StreamOrderEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orders_pb2.OrderEvent]:
        accounts = self._scope(validation.text("account", request.account))
        if request.HasField("after_sequence") and request.after_sequence < 0:
            raise InvalidArgument("after_sequence", "must be 0 or more")
        after = request.after_sequence if request.HasField("after_sequence") else None
        async for event in self._hub.subscribe(context, after, accounts, catch_up_only=request.catch_up_only):
            yield self._event_messages(event)
