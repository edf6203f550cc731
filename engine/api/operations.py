"""OperationsService: batch orders, exits, cancel-all, trading states and the kill switch.

Thin: requests become domain values here and replies become messages; the work is in engine.api.fanout
(Operations) and engine.api.trading (TradingStates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.fanout import CancelResult, ExitResult, Operations
from engine.api.gateway import Gateway
from engine.api.registry import AccountRegistry
from engine.api.trading import MAX_REASON, TradingStates, set_state_reply, state_entry_to_proto, trading_states_reply
from engine.domain import InstrumentId, Product
from engine.errors import InvalidArgument
from engine.routing.batch import LegOutcome, LegResult
from trademaster.v1 import operations_pb2, operations_pb2_grpc

_OUTCOMES = {
    LegOutcome.PLACED: operations_pb2.LEG_OUTCOME_PLACED,
    LegOutcome.DUPLICATE: operations_pb2.LEG_OUTCOME_DUPLICATE,
    LegOutcome.FAILED: operations_pb2.LEG_OUTCOME_FAILED,
    LegOutcome.SKIPPED: operations_pb2.LEG_OUTCOME_SKIPPED,
}


class OperationsService(operations_pb2_grpc.OperationsServiceServicer):
    def __init__(
        self, gateway: Gateway, operations: Operations, states: TradingStates, registry: AccountRegistry
    ) -> None:
        self._gw = gateway
        self._ops = operations
        self._states = states
        self._registry = registry

    def _leg(self, leg: LegResult) -> operations_pb2.BatchLeg:
        order = convert.order_to_proto(leg.order, self._gw.broker_of(leg.account)) if leg.order else None
        return operations_pb2.BatchLeg(
            account=leg.account,
            quantity=leg.quantity,
            outcome=_OUTCOMES[leg.outcome],
            order=order,
            error=leg.error,
            error_code=leg.error_code,
        )

    def _cancelled(self, result: CancelResult) -> operations_pb2.CancelOpenOrdersResponse:
        return operations_pb2.CancelOpenOrdersResponse(
            cancelled=[convert.order_to_proto(o, self._gw.broker_of(o.account)) for o in result.cancelled],
            failed=[operations_pb2.CancelFailure(order_id=f.order_id, account=f.account, error=f.error)
                    for f in result.failed],
        )  # fmt: skip

    def _exits(self, result: ExitResult) -> operations_pb2.ExitPositionsResponse:
        return operations_pb2.ExitPositionsResponse(
            legs=[self._leg(leg) for leg in result.legs],
            cancelled=self._cancelled(result.cancelled) if result.cancelled else None,
        )

    def _instrument(self, raw: str) -> InstrumentId | None:
        return validation.instrument("instrument", raw, self._gw.lookup).id if raw else None

    async def BatchOrder(
        self, request: operations_pb2.BatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.BatchOrderResponse:
        legs = await self._ops.batch(request, caller())
        return operations_pb2.BatchOrderResponse(
            client_batch_id=request.client_batch_id,
            legs=[self._leg(leg) for leg in legs],
            placed=_count(legs, LegOutcome.PLACED, LegOutcome.DUPLICATE),
            failed=_count(legs, LegOutcome.FAILED),
            skipped=_count(legs, LegOutcome.SKIPPED),
        )

    async def StreamBatchOrder(
        self, request: operations_pb2.BatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[operations_pb2.BatchLeg]:
        async for leg in self._ops.batch_stream(request, caller()):
            yield self._leg(leg)

    async def ExitPositions(
        self, request: operations_pb2.ExitPositionsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ExitPositionsResponse:
        me = caller()
        client_id = validation.text("client_exit_id", request.client_exit_id, required=True)
        accounts = self._ops.accounts_in(request.accounts, request.group, me)
        product: Product | None = None
        if request.product:
            product = convert.product_from_proto(request.product)
            if product is None:
                raise InvalidArgument("product", f"unknown value {request.product}")
        result = await self._ops.exit_positions(
            accounts,
            self._instrument(request.instrument),
            product,
            request.include_holdings,
            client_id,
            me,
            cancel_open_orders=request.cancel_open_orders,
        )
        return self._exits(result)

    async def CancelOpenOrders(
        self, request: operations_pb2.CancelOpenOrdersRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.CancelOpenOrdersResponse:
        me = caller()
        accounts = self._ops.accounts_in(request.accounts, request.group, me)
        return self._cancelled(await self._ops.cancel_open(accounts, self._instrument(request.instrument), me))

    async def SetTradingState(
        self, request: operations_pb2.SetTradingStateRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.TradingStateEntry:
        return await set_state_reply(self._states, self._registry, request, caller())

    async def GetTradingStates(
        self, request: operations_pb2.GetTradingStatesRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.GetTradingStatesResponse:
        return trading_states_reply(self._states, self._registry, caller())

    async def Kill(
        self, request: operations_pb2.KillRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.KillResponse:
        scope = convert.scope_from_proto(request.scope)
        reason = validation.text("reason", request.reason, limit=MAX_REASON)
        kill_id = validation.text("client_kill_id", request.client_kill_id, required=request.flatten)
        result = await self._ops.kill(scope, reason, request.flatten, kill_id, caller())
        return operations_pb2.KillResponse(
            state=state_entry_to_proto(result.state),
            cancelled=self._cancelled(result.cancelled),
            exits=self._exits(result.exits) if result.exits else None,
        )


def _count(legs: Sequence[LegResult], *outcomes: LegOutcome) -> int:
    return sum(leg.outcome in outcomes for leg in legs)
