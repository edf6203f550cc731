"""Cancel and modify one plain (non-routed) order on a caller's behalf: the checks every path needs and the one
actor call. The API, the operations (cancel-all, kill) and the strategy runner all act through here, so an
order is never changed without its owner's permission or past its account's trading state."""

from __future__ import annotations

from dataclasses import replace

from engine.api.gateway import Gateway
from engine.api.trading import TradingStates
from engine.brokers.base import ModifyRequest
from engine.domain import Order
from engine.errors import NotFound
from engine.security.principal import Principal


class OrderCommands:
    def __init__(self, gateway: Gateway, states: TradingStates) -> None:
        self._gw = gateway
        self._states = states

    async def order(self, order_id: str, caller: Principal) -> Order:
        """The plain order, if the caller may use its account; NotFound for an unknown (or routed parent) id."""
        order = await self._gw.store.get(order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        self._gw.require_account(order.account, caller)
        return order

    async def cancel(self, order_id: str, caller: Principal) -> Order:
        """Cancel whatever the account's trading state: getting out of the market is always allowed."""
        order = await self.order(order_id, caller)
        actor = self._gw.accounts[order.account].actor
        return await self._gw.call("account", "cancel", actor.cancel.remote(order.order_id))

    async def modify(self, order_id: str, change: ModifyRequest, caller: Principal) -> Order:
        """Change a working order, if the account's trading state allows the order as changed.

        `change` is already validated against the order's instrument (engine.api.validation.modify_request).
        """
        order = await self.order(order_id, caller)
        changed = replace(
            order,
            quantity=change.quantity if change.quantity is not None else order.quantity,
            order_type=change.order_type or order.order_type,
        )
        working = await self._states.working(order.account, order.instrument, order.side, order.product)
        self._states.check_modify(changed, self._gw.snapshot(order.account), working)
        actor = self._gw.accounts[order.account].actor
        return await self._gw.call("account", "modify", actor.modify.remote(order.order_id, change))
