"""Trading states in the gateway: set on the whole daemon, a group or an account, persisted, and checked on
every order path (placement, routing, modify) from the cached account snapshots. Cancels are never checked.

The rules themselves are pure (engine.risk.states); this module keeps the entries, persists them first and
decides who may set what:
- GLOBAL needs an admin; GROUP needs every member to be the caller's; ACCOUNT needs the account.
- A non-admin cannot lift a scope below what an admin last set there (StateEntry.floor), even after
  tightening it themselves. `set` checks this under its lock, so a lift racing an admin's halt sees it.
- A state belongs to the scope's name. Deleting a group leaves its state in place (GetTradingStates still
  lists it) and a group created again under that name starts in it; setting it ACTIVE is allowed whether the
  group exists or not, so such a state can always be lifted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from engine.api import convert, validation
from engine.api.registry import AccountRegistry
from engine.domain import InstrumentId, Order, OrderRequest, Product, Side
from engine.domain.accounts import AccountSnapshot
from engine.errors import InvalidArgument, PermissionDenied
from engine.risk.states import (
    Scope,
    ScopeKind,
    StateEntry,
    StateRefusal,
    TradingState,
    committed,
    effective_state,
    open_quantity,
    refusal,
)
from engine.security.principal import Principal
from engine.security.tokens import Role
from engine.store.orders import OrderStore
from engine.store.overrides import OverrideStore
from trademaster.v1 import operations_pb2

MAX_REASON = 200  # characters of a trading state's reason (SetTradingState, Kill)


class TradingStates:
    def __init__(
        self, store: OverrideStore, registry: AccountRegistry, orders: OrderStore, entries: Iterable[StateEntry]
    ) -> None:
        self._store = store
        self._registry = registry
        self._orders = orders
        self._entries = {e.scope: e for e in entries}
        self._lock = asyncio.Lock()  # the database and memory see the same order of changes

    @classmethod
    async def load(cls, store: OverrideStore, registry: AccountRegistry, orders: OrderStore) -> TradingStates:
        return cls(store, registry, orders, await store.trading_states())

    def _check_scope(self, scope: Scope, state: TradingState, registry: AccountRegistry) -> list[str]:
        """The accounts the scope covers now (AccountRegistry.scope_accounts, which refuses a scope naming nothing
        that exists), except that a deleted group's state may still be lifted (it covers no account)."""
        deleted = scope.kind is ScopeKind.GROUP and scope.name not in registry.groups()
        if deleted and state is TradingState.ACTIVE and scope in self._entries:
            return []
        return registry.scope_accounts(scope)

    def authorize(self, scope: Scope, state: TradingState, caller: Principal, registry: AccountRegistry) -> None:
        """Refuse unless the caller may set states on `scope` (the rules in the module docstring); `set` then
        checks that a non-admin does not lift it below an admin's state."""
        accounts = self._check_scope(scope, state, registry)
        if caller.role is Role.ADMIN:
            return
        if scope.kind is ScopeKind.GLOBAL:
            raise PermissionDenied(f"only an admin may set the global trading state; {caller.user} is a {caller.role}")
        for account in accounts:
            caller.require(account)

    async def set(
        self, scope: Scope, state: TradingState, reason: str, caller: Principal, *, by: str = "", tighten: bool = False
    ) -> StateEntry:
        """Set the scope's state, persisted before it takes effect, as `caller` (already authorized) and in the
        name of `by` (default: the caller's user). An admin's state is the scope's new floor: non-admins may not
        set anything less restrictive until an admin does; that is checked here, under the lock, against the
        floor of the moment. `tighten`: never lower the state; a scope already more restrictive keeps its entry,
        which is returned."""
        self._check_scope(scope, state, self._registry)
        admin = caller.role is Role.ADMIN
        async with self._lock:
            current = self._entries.get(scope)
            if tighten and current is not None and current.state.rank > state.rank:
                return current
            if not admin and current is not None and state.rank < current.floor.rank:
                raise PermissionDenied(
                    f"{scope} was set {current.floor} by an admin; only an admin may set it to {state}"
                    f" (now {current.because})"
                )
            floor = state if admin else (current.floor if current else TradingState.ACTIVE)
            entry = StateEntry(scope, state, reason, by or caller.user, datetime.now(UTC), floor)
            await self._store.set_trading_state(entry)
            self._entries[scope] = entry
        return entry

    def entries(self) -> list[StateEntry]:
        """Every scope whose state is not ACTIVE, global first, then groups and accounts by name."""
        order = {ScopeKind.GLOBAL: 0, ScopeKind.GROUP: 1, ScopeKind.ACCOUNT: 2}
        live = [e for e in self._entries.values() if e.state is not TradingState.ACTIVE]
        return sorted(live, key=lambda e: (order[e.scope.kind], e.scope.name))

    def effective(self, account: str) -> tuple[TradingState, str]:
        """The account's state (the most restrictive of global, its groups' and its own) and which scope set it."""
        return effective_state(self._entries, account, self._registry.groups_of(account))

    async def working(self, account: str, instrument: InstrumentId, side: Side, product: Product) -> dict[str, int]:
        """The account's open orders on this side of the position, client order id -> unfilled units (none
        unless REDUCING, the only state that counts them): two sells of a whole long position must not both pass."""
        if self.effective(account)[0] is not TradingState.REDUCING:
            return {}
        return {
            o.client_order_id: o.quantity - o.filled_quantity
            for o in await self._orders.live_orders(account)
            if o.instrument == instrument and o.side is side and o.product is product
        }

    def refusal(self, request: OrderRequest, snapshot: AccountSnapshot, working: Mapping[str, int]) -> str | None:
        """Why the account's trading state refuses the order, or None; routing leaves such accounts out.

        `working`: the orders already on the order's side, open or in flight (see `working`); the order itself
        is counted with them as engine.risk.states.committed counts, one strategy's orders as one OCO family.
        """
        state, because = self.effective(request.account)
        position = open_quantity(request.instrument, request.product, snapshot.positions, snapshot.holdings)
        others = committed({**working, request.client_order_id: request.quantity}) - request.quantity
        return refusal(
            state, because, request.side, request.quantity, request.instrument, request.product, position, others
        )

    def check_order(self, request: OrderRequest, snapshot: AccountSnapshot, working: Mapping[str, int]) -> None:
        """Raise StateRefusal (FAILED_PRECONDITION, naming the account and the scope) if the state refuses."""
        why = self.refusal(request, snapshot, working)
        if why is not None:
            raise StateRefusal(why, request.account)

    def check_modify(self, order: Order, snapshot: AccountSnapshot, working: Mapping[str, int]) -> None:
        """Like check_order, for a working order as a modification would leave it: its unfilled quantity counts,
        in place of what `working` has for it.

        Under REDUCING a reducing order may still be re-priced (moving a stop-loss), never enlarged past the
        position; under HALTED nothing may be modified.
        """
        state, because = self.effective(order.account)
        position = open_quantity(order.instrument, order.product, snapshot.positions, snapshot.holdings)
        unfilled = order.quantity - order.filled_quantity
        others = committed({**working, order.client_order_id: unfilled}) - unfilled
        why = refusal(state, because, order.side, unfilled, order.instrument, order.product, position, others)
        if why is not None:
            raise StateRefusal(f"order {order.order_id} cannot be modified: {why}", order.account)


def state_entry_to_proto(entry: StateEntry) -> operations_pb2.TradingStateEntry:
    return operations_pb2.TradingStateEntry(
        scope=convert.scope_to_proto(entry.scope),
        state=convert.trading_state_to_proto(entry.state),
        reason=entry.reason,
        set_by=entry.set_by,
        set_at=convert.timestamp(entry.set_at),
    )


def _visible(entry: StateEntry, registry: AccountRegistry, caller: Principal) -> bool:
    """Non-admins see the global state, groups with one of their accounts, and their accounts."""
    scope = entry.scope
    if caller.role is Role.ADMIN or scope.kind is ScopeKind.GLOBAL:
        return True
    if scope.kind is ScopeKind.ACCOUNT:
        return caller.may_use(scope.name)
    return bool(caller.visible(registry.groups().get(scope.name, [])))


def trading_states_reply(
    states: TradingStates, registry: AccountRegistry, caller: Principal
) -> operations_pb2.GetTradingStatesResponse:
    """OperationsService.GetTradingStates: the restricting entries the caller may see, and their accounts' states."""
    accounts = []
    for account in caller.visible(registry.accounts):
        state, because = states.effective(account)
        accounts.append(
            operations_pb2.AccountTradingState(
                account=account, state=convert.trading_state_to_proto(state), because=because
            )
        )
    return operations_pb2.GetTradingStatesResponse(
        entries=[state_entry_to_proto(e) for e in states.entries() if _visible(e, registry, caller)],
        accounts=accounts,
    )


async def set_state_reply(
    states: TradingStates,
    registry: AccountRegistry,
    request: operations_pb2.SetTradingStateRequest,
    caller: Principal,
) -> operations_pb2.TradingStateEntry:
    """OperationsService.SetTradingState: validate, authorize, set."""
    scope = convert.scope_from_proto(request.scope)
    state = convert.trading_state_from_proto(request.state)
    if state is None:
        raise InvalidArgument("state", "required: TRADING_STATE_ACTIVE, _REDUCING or _HALTED")
    reason = validation.text("reason", request.reason, limit=MAX_REASON)
    states.authorize(scope, state, caller, registry)
    entry = await states.set(scope, state, reason, caller)
    return state_entry_to_proto(entry)
