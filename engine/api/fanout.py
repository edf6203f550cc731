"""Operations over many accounts at once: one order to each (batch), getting out (exit), cancelling every open
order, and the kill switch.

Each account's order goes through Placement in standard mode naming the account, exactly like a PlaceOrder,
so validation, risk limits, trading states, pacing and idempotency all apply to every leg. This module only
chooses the accounts, fans the legs out in parallel and reports what became of each one: a leg that failed or
was skipped is reported with why, never dropped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass

from engine.api import convert, validation
from engine.api.gateway import Gateway
from engine.api.interceptors import status_for
from engine.api.metrics import ORDERS
from engine.api.order_commands import OrderCommands
from engine.api.placement import Placement
from engine.api.registry import AccountRegistry
from engine.api.trading import TradingStates
from engine.domain import InstrumentId, Order, OrderStatus, Product
from engine.domain.exits import ID_SUFFIX_LENGTH, ExitOrder, exit_client_id, exit_orders
from engine.errors import InvalidArgument, PermissionDenied
from engine.risk.states import Scope, StateEntry, TradingState
from engine.routing.batch import LegOutcome, LegResult, LegSize, batch_client_id, explicit_sizes, scaled_sizes
from engine.security.principal import Principal
from trademaster.v1 import common_pb2, operations_pb2, orders_pb2

_OPEN_ORDERS_LIMIT = 10_000  # far above what a scope holds; the store needs a bound


@dataclass(frozen=True, slots=True)
class CancelFailure:
    order_id: str
    account: str
    error: str


@dataclass(frozen=True, slots=True)
class CancelResult:
    cancelled: tuple[Order, ...] = ()  # each as the cancel left it
    failed: tuple[CancelFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class ExitResult:
    legs: tuple[LegResult, ...]  # one per (account, instrument, product) exited; one SKIPPED per idle account
    cancelled: CancelResult | None = None  # when open orders were cancelled first


@dataclass(frozen=True, slots=True)
class KillResult:
    state: StateEntry
    cancelled: CancelResult
    exits: ExitResult | None = None  # with flatten


@dataclass(frozen=True, slots=True)
class _Leg:
    size: LegSize
    request: orders_pb2.PlaceOrderRequest  # validated; sent only when size.quantity > 0


class Operations:
    def __init__(
        self,
        gateway: Gateway,
        placement: Placement,
        registry: AccountRegistry,
        states: TradingStates,
        commands: OrderCommands,
    ) -> None:
        self._gw = gateway
        self._placement = placement
        self._registry = registry
        self._states = states
        self._commands = commands
        self._running: set[asyncio.Task[LegResult]] = set()  # legs of streams whose client went away

    # -- which accounts ---------------------------------------------------------------------------

    def accounts_in(self, accounts: Sequence[str], group: str, caller: Principal) -> list[str]:
        """The accounts a request names: its `accounts`, its `group`'s members, or (neither) every account the
        caller may use. One the caller may not use refuses the whole request, before anything is done."""
        if accounts and group:
            raise InvalidArgument("group", "name accounts or a group, not both")
        if group:
            named = self._registry.members(validation.text("group", group))
        elif accounts:
            named = list(dict.fromkeys(accounts))
            for account in named:
                if account not in self._gw.accounts:
                    raise InvalidArgument("accounts", f"unknown account {account!r}")
        else:
            mine = caller.visible(self._gw.accounts)
            if not mine:
                raise PermissionDenied(f"{caller.user} owns no accounts")
            return mine
        for account in named:
            caller.require(account)
        return named

    # -- batch ------------------------------------------------------------------------------------

    async def batch(self, request: operations_pb2.BatchOrderRequest, caller: Principal) -> list[LegResult]:
        """Every leg sent at once; the outcomes in the request's account order."""
        legs = self._plan_batch(request, caller)
        return list(await asyncio.gather(*(self._send(leg, caller) for leg in legs)))

    async def batch_stream(
        self, request: operations_pb2.BatchOrderRequest, caller: Principal
    ) -> AsyncIterator[LegResult]:
        """Like `batch`, each leg's outcome as soon as it is known. Everything is validated before the first one.

        Legs already sent finish even if the caller stops listening: an order half-placed is worse than one
        whose outcome nobody read (a retry with the same client_batch_id finds it).
        """
        legs = self._plan_batch(request, caller)
        tasks = [asyncio.create_task(self._send(leg, caller)) for leg in legs]
        for task in tasks:
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        for next_done in asyncio.as_completed(tasks):
            yield await next_done

    def _plan_batch(self, request: operations_pb2.BatchOrderRequest, caller: Principal) -> list[_Leg]:
        """Validate the whole batch and size each account's leg; raises before anything is sent."""
        batch_id = validation.text("client_batch_id", request.client_batch_id, required=True)
        found = validation.instrument("instrument", request.instrument, self._gw.lookup)
        if request.quantities and request.base_quantity:
            raise InvalidArgument("base_quantity", "give quantities or base_quantity, not both")
        if request.quantities:
            if request.accounts or request.group:
                raise InvalidArgument("quantities", "names the accounts itself: leave accounts and group empty")
            for account, quantity in request.quantities.items():
                if account not in self._gw.accounts:
                    raise InvalidArgument("quantities", f"unknown account {account!r}")
                if quantity < 0:
                    raise InvalidArgument("quantities", f"{account}: must be 0 or more, got {quantity}")
            named = [a for a in self._gw.accounts if a in request.quantities]  # configuration order
            for account in named:
                caller.require(account)
            sizes, quantity_field = explicit_sizes(named, dict(request.quantities)), "quantities"
        elif request.base_quantity > 0:
            named = self.accounts_in(request.accounts, request.group, caller)
            multipliers = {a: self._registry.multiplier(a) for a in named}
            sizes = scaled_sizes(named, request.base_quantity, multipliers, found.lot_size)
            quantity_field = "base_quantity"
        elif request.base_quantity < 0:
            raise InvalidArgument("base_quantity", f"must be greater than 0, got {request.base_quantity}")
        else:
            raise InvalidArgument("quantities", "required: a quantity per account, or base_quantity")
        legs = []
        for size in sizes:
            leg = orders_pb2.PlaceOrderRequest(
                client_order_id=batch_client_id(batch_id, size.account),
                account=size.account,
                instrument=request.instrument,
                side=request.side,
                quantity=size.quantity or found.lot_size,  # a skipped leg's other fields are checked all the same
                product=request.product,
                order_type=request.order_type,
                price=request.price,
                trigger_price=request.trigger_price,
                mode=orders_pb2.ROUTING_MODE_STANDARD,
            )
            self._check_leg(leg, quantity_field)
            leg.quantity = size.quantity
            legs.append(_Leg(size, leg))
        return legs

    def _check_leg(self, leg: orders_pb2.PlaceOrderRequest, quantity_field: str) -> None:
        """Validate one leg as PlaceOrder will, naming the batch's fields: the leg's quantity comes from
        `quantity_field`, its client id from client_batch_id."""
        _check_id("client_batch_id", leg.client_order_id, leg.account)
        try:
            validation.place_request(leg, leg.account, self._gw.lookup)
        except InvalidArgument as exc:
            if exc.field == "quantity":
                raise InvalidArgument(quantity_field, f"{leg.account}: {exc.problem}") from None
            raise

    async def _send(self, leg: _Leg, caller: Principal) -> LegResult:
        if not leg.size.quantity:
            return LegResult(leg.size.account, 0, LegOutcome.SKIPPED, error=leg.size.skipped)
        return await self._place(leg.request, caller)

    async def _place(self, request: orders_pb2.PlaceOrderRequest, caller: Principal, what: str = "") -> LegResult:
        """One leg through Placement; whatever happens becomes its LegResult. `what` prefixes its error."""
        account, quantity = request.account, request.quantity
        try:
            placed = await self._placement.place(request, caller)
        except Exception as exc:  # every leg's outcome is reported, whatever it is
            code, message = status_for(exc)
            ORDERS.labels(account, "invalid" if code.name == "INVALID_ARGUMENT" else "refused").inc()
            return LegResult(account, quantity, LegOutcome.FAILED, error=what + message, error_code=code.name)
        order = placed.order
        ORDERS.labels(account, "duplicate" if placed.duplicate else order.status.value.lower()).inc()
        if placed.duplicate:
            return LegResult(account, quantity, LegOutcome.DUPLICATE, order)
        if order.status is OrderStatus.REJECTED:
            why = what + (order.status_message or "rejected by the broker")
            return LegResult(account, quantity, LegOutcome.FAILED, order, why, "FAILED_PRECONDITION")
        return LegResult(account, quantity, LegOutcome.PLACED, order)

    # -- exit -------------------------------------------------------------------------------------

    async def exit_positions(
        self,
        accounts: Sequence[str],
        instrument: InstrumentId | None,
        product: Product | None,
        include_holdings: bool,
        client_id: str,
        caller: Principal,
        *,
        cancel_open_orders: bool = False,
    ) -> ExitResult:
        """Close the accounts' positions (of `instrument`, `product`) with MARKET orders in their own products.

        Each account syncs with its broker first, so the exit sizes come from the broker's latest positions and
        holdings. Exit orders are "<client_id>-<account code>-<key>" (exit_client_id), the key fixed by
        (instrument, product): a retry of the same exit returns the orders already placed instead of selling twice.
        """
        for account in accounts:
            self._gw.require_account(account, caller)
        _check_exit_id("client_exit_id", client_id, caller.strategy)
        cancelled = await self.cancel_open(accounts, instrument, caller) if cancel_open_orders else None
        per_account = await asyncio.gather(
            *(self._exit_account(a, instrument, product, include_holdings, client_id, caller) for a in accounts)
        )
        return ExitResult(tuple(itertools.chain.from_iterable(per_account)), cancelled)

    async def _exit_account(
        self,
        account: str,
        instrument: InstrumentId | None,
        product: Product | None,
        include_holdings: bool,
        client_id: str,
        caller: Principal,
    ) -> list[LegResult]:
        try:
            snapshot = await self._gw.refresh(account)
        except Exception as exc:  # one account's trouble is reported on its leg; the others go on
            code, message = status_for(exc)
            why = f"could not read its positions: {message}"
            return [LegResult(account, 0, LegOutcome.FAILED, error=why, error_code=code.name)]
        orders = exit_orders(snapshot, instrument, product, include_holdings)
        if not orders:
            what = " ".join(str(x) for x in (instrument, product) if x is not None)
            return [LegResult(account, 0, LegOutcome.SKIPPED, error=f"nothing to exit{' in ' + what if what else ''}")]
        return list(
            await asyncio.gather(
                *(self._place(_exit_request(client_id, account, o), caller, f"{o.describe()}: ") for o in orders)
            )
        )

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel_open(
        self, accounts: Sequence[str], instrument: InstrumentId | None, caller: Principal
    ) -> CancelResult:
        """Cancel every open order of the accounts (of `instrument`) at once; each failure is reported."""
        for account in accounts:
            self._gw.require_account(account, caller)
        if not accounts:
            return CancelResult()
        found = await self._gw.store.list(accounts=accounts, open_only=True, limit=_OPEN_ORDERS_LIMIT)
        wanted = [o for o in found if instrument is None or o.instrument == instrument]
        outcomes = await _settle_all(self._commands.cancel(o.order_id, caller) for o in wanted)
        cancelled, failed = [], []
        for order, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, Order):
                cancelled.append(outcome)
            else:
                failed.append(CancelFailure(order.order_id, order.account, status_for(outcome)[1]))
        return CancelResult(tuple(cancelled), tuple(failed))

    # -- kill switch ------------------------------------------------------------------------------

    async def kill(
        self, scope: Scope, reason: str, flatten: bool, client_kill_id: str, caller: Principal
    ) -> KillResult:
        """HALTED at the scope, then every open order in it cancelled. With `flatten`, first REDUCING (unless the
        scope is already HALTED: a kill never lowers a state), the open orders cancelled and the positions (not
        holdings) closed, then HALTED: the halt holds even if that fails.

        The exit orders' ids derive from `client_kill_id` (exit id "kill-<client_kill_id>"), so a retried kill
        finds the exits the first attempt placed instead of selling again.
        """
        self._states.authorize(scope, TradingState.HALTED, caller, self._registry)
        accounts = self._registry.usable_scope_accounts(scope, caller)
        why = reason or "kill switch"
        if not flatten:
            entry = await self._states.set(scope, TradingState.HALTED, why, caller)
            return KillResult(entry, await self.cancel_open(accounts, None, caller))
        exit_id = f"kill-{client_kill_id}"
        _check_exit_id("client_kill_id", exit_id, caller.strategy)
        await self._states.set(scope, TradingState.REDUCING, why, caller, tighten=True)
        try:
            cancelled = await self.cancel_open(accounts, None, caller)
            exits = await self.exit_positions(accounts, None, None, False, exit_id, caller)
        finally:
            entry = await self._states.set(scope, TradingState.HALTED, why, caller)
        return KillResult(entry, cancelled, exits)


def _exit_request(client_id: str, account: str, order: ExitOrder) -> orders_pb2.PlaceOrderRequest:
    return orders_pb2.PlaceOrderRequest(
        client_order_id=exit_client_id(client_id, account, order),
        account=account,
        instrument=str(order.instrument),
        side=convert.side_to_proto(order.side),
        quantity=order.quantity,
        product=convert.product_to_proto(order.product),
        order_type=common_pb2.ORDER_TYPE_MARKET,
        mode=orders_pb2.ROUTING_MODE_STANDARD,
    )


def _check_id(field: str, leg_id: str, account: str, strategy: str = "") -> None:
    """A leg's client order id is the request's id plus the account's code: it must be a valid client id
    (`strategy`: the strategy placing, which alone may use its reserved ids)."""
    try:
        validation.client_id(field, leg_id, strategy=strategy)
    except InvalidArgument as exc:
        raise InvalidArgument(field, f"makes the order id {leg_id!r} for {account}: {exc.problem}") from None


def _check_exit_id(field: str, exit_id: str, strategy: str) -> None:
    """An exit's orders are "<exit_id>-<account code>-<key>" (exit_client_id): they must be valid client ids."""
    try:
        validation.client_id(field, exit_id, strategy=strategy)
        validation.client_id(field, exit_id + "-" * ID_SUFFIX_LENGTH, strategy=strategy)
    except InvalidArgument as exc:
        why = f"{exc.problem} (exit orders' ids are {exit_id!r} and {ID_SUFFIX_LENGTH} more characters)"
        raise InvalidArgument(field, why) from None


async def _settle_all(calls: Iterable[Awaitable[Order]]) -> list[Order | Exception]:
    """Await every call at once; each one's order, or the error it ended in."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return outcomes  # type: ignore[return-value]
