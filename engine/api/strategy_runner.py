"""Running strategies in the gateway process: one asyncio task per live strategy, one StrategyActor each.

Each task feeds its strategy the inputs (its orders' updates from the order event log, from the cursor the
strategy saved; a Tick every half second with the prices it watches and its scopes' PnL today), batched into
one actor call, and executes the commands the actor returns as the strategy's owner, through the same checks
as an API call (placement, pre-trade risk, trading states, ownership). A refused order command comes back to
the strategy as a Refused input, after the order's latest state, so the logic never judges a refusal on stale
knowledge. What a command did is acknowledged to the actor, which drops it from the outbox.

Paused, a strategy gets no Ticks (no new entries, schedule runs, trailing or PnL checks) but still gets its
orders' updates, so the protection it already has keeps working: an exit fill still cancels the other leg.
A strategy whose owner may no longer trade, or whose scope no longer exists or is no longer the owner's, fails.

A crash (of the daemon or of the actor) loses nothing: the actor saved every decision before returning it, so
the task, started again, re-opens the actor, executes its outbox again (orders are placed under client ids
"<strategy id>-<key>", so nothing is placed twice) and resumes the order events from the saved cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ray
import ray.exceptions

from actors.strategy import StrategyActor
from engine.api import convert
from engine.api.events import EventHub
from engine.api.fanout import Operations
from engine.api.gateway import Gateway
from engine.api.order_commands import OrderCommands
from engine.api.placement import Placement
from engine.api.registry import AccountRegistry
from engine.api.trading import TradingStates
from engine.brokers.base import ModifyRequest
from engine.errors import ApiError, FailedPrecondition
from engine.risk.states import Scope
from engine.routing.batch import LegOutcome
from engine.security.principal import Principal
from engine.security.tokens import Role
from engine.store.database import database_unreachable
from engine.store.strategies import Pending, StrategyRecord, StrategyStore, order_client_id
from engine.store.users import UserStore
from engine.strategies.base import (
    Cancel,
    Command,
    Finish,
    Input,
    Modify,
    Note,
    OrderUpdate,
    Place,
    Refused,
    SetTradingState,
    SquareOff,
    StrategyStatus,
    Tick,
    Watch,
)
from engine.strategy_host import LogicError, NotOpen, Opened, Stepped
from trademaster.v1 import orders_pb2

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
CLOCK_ENV = "TRADEMASTER_STRATEGY_CLOCK"
_RETRY_SECONDS = 1.0
_STOP_WAIT_SECONDS = 30.0
_OPEN_ORDERS_LIMIT = 10_000  # far above what one strategy's accounts hold open; the store needs a bound


@dataclass(frozen=True, slots=True)
class Services:
    """What executing a strategy's commands goes through: the same objects the API's services use."""

    placement: Placement
    orders: OrderCommands
    operations: Operations
    states: TradingStates
    registry: AccountRegistry


Clock = Callable[[], datetime]


def strategy_clock(start: str | None = None) -> Clock:
    """The strategies' clock: the real time, or, when CLOCK_ENV names an ISO 8601 instant, time running from that
    instant since the daemon started. It lets a schedule be rehearsed (and tested) on a weekend or at night: the
    orders are still real, only the strategies' sense of date and time moves."""
    start = start if start is not None else os.environ.get(CLOCK_ENV, "")
    if not start:
        return lambda: datetime.now(UTC)
    origin = datetime.fromisoformat(start)
    if origin.tzinfo is None:
        raise ValueError(f"{CLOCK_ENV} needs a time zone, e.g. 2026-11-23T09:14:50+05:30; got {start!r}")
    began = time.monotonic()
    log.warning("strategies run on a shifted clock starting at %s (%s)", origin.isoformat(), CLOCK_ENV)
    return lambda: origin + timedelta(seconds=time.monotonic() - began)


class _CannotRun(Exception):
    """Nothing may be done in the owner's name any more: they were removed or may no longer trade, or the
    strategy's scope no longer exists or is no longer theirs. Retrying cannot help: the strategy fails."""


class _Closed(Exception):
    """The actor refused to open: the strategy is no longer live (it finished or was stopped meanwhile)."""


@dataclass
class _Live:
    """A running strategy's task and what the API's pause, resume and stop tell it."""

    record: StrategyRecord
    paused: bool
    actor: Any = None  # ray.actor.ActorHandle of StrategyActor
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    watch: Watch = field(default_factory=Watch)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    updates: list[OrderUpdate] = field(default_factory=list)  # from the feed, in event order
    scanned: int = 0  # the last order event the feed looked at; every update up to it is in `updates` or fed

    @property
    def strategy_id(self) -> str:
        return self.record.strategy_id

    @property
    def quote_owner(self) -> str:
        return f"strategy:{self.strategy_id}"


class StrategyRunner:
    def __init__(
        self,
        store: StrategyStore,
        hub: EventHub,
        gateway: Gateway,
        users: UserStore,
        services: Services,
        dsn: str,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._store = store
        self._hub = hub
        self._gw = gateway
        self._users = users
        self._svc = services
        self._dsn = dsn
        self._live: dict[str, _Live] = {}

    async def start(self) -> None:
        """Run every strategy a previous daemon left RUNNING or PAUSED, from where it stopped."""
        for record in await self._store.list(active_only=True):
            self.launch(record)
        if self._live:
            log.info("strategies: resumed %d", len(self._live))

    async def stop(self) -> None:
        """Daemon shutdown: end the tasks, leave every status as it is for the next start."""
        tasks = [live.task for live in self._live.values() if live.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def launch(self, record: StrategyRecord) -> None:
        live = _Live(record, paused=record.status is StrategyStatus.PAUSED)
        live.actor = StrategyActor.options(name=live.quote_owner, get_if_exists=True).remote(
            record.strategy_id, self._dsn
        )
        live.task = asyncio.create_task(self._run(live), name=live.quote_owner)
        self._live[record.strategy_id] = live

    # -- the API's controls --------------------------------------------------------------------------

    async def pause(self, record: StrategyRecord, by: str) -> StrategyRecord:
        if record.status is not StrategyStatus.RUNNING:
            raise FailedPrecondition(f"strategy {record.strategy_id} is {record.status.value}, not RUNNING")
        updated = await self._store.set_status(record.strategy_id, StrategyStatus.PAUSED, f"paused by {by}", "paused")
        live = self._live.get(record.strategy_id)
        if live is not None:
            live.paused = True
            live.wake.set()
        return updated

    async def resume(self, record: StrategyRecord, by: str) -> StrategyRecord:
        if record.status is not StrategyStatus.PAUSED:
            raise FailedPrecondition(f"strategy {record.strategy_id} is {record.status.value}, not PAUSED")
        updated = await self._store.set_status(
            record.strategy_id, StrategyStatus.RUNNING, f"resumed by {by}", "resumed"
        )
        live = self._live.get(record.strategy_id)
        if live is None:
            self.launch(updated)
        else:
            live.paused = False
            live.wake.set()
        return updated

    async def stop_strategy(self, record: StrategyRecord, caller: Principal) -> StrategyRecord:
        """Stop for good: let the task finish what it is executing, then cancel the strategy's working orders."""
        if record.status.is_final:
            raise FailedPrecondition(f"strategy {record.strategy_id} is already {record.status.value}")
        live = self._live.get(record.strategy_id)
        if live is not None:
            live.stopping = True
            live.wake.set()
            if live.task is not None:
                done, _ = await asyncio.wait([live.task], timeout=_STOP_WAIT_SECONDS)
                if not done:  # wait for the cancellation too: an order being placed then is found below
                    live.task.cancel()
                    await asyncio.gather(live.task, return_exceptions=True)
        current = await self._store.get(record.strategy_id)
        assert current is not None, "strategies are never deleted"
        if current.status.is_final:  # it finished by itself meanwhile
            return current
        cancelled, failed = await self._cancel_working(current, caller)
        message = f"stopped by {caller.user}; cancelled {cancelled} working order(s)"
        if failed:
            message += f"; could not cancel: {'; '.join(failed)}"
        return await self._store.set_status(record.strategy_id, StrategyStatus.STOPPED, message, "stopped")

    async def _cancel_working(self, record: StrategyRecord, caller: Principal) -> tuple[int, list[str]]:
        """Cancel every working order of the strategy: those it recorded, and any under its client-id prefix
        that it had no time to record (placed just before a crash or a cancelled task)."""
        prefix = order_client_id(record.strategy_id, "")
        recorded = set((await self._store.orders(record.strategy_id)).values())
        found = await self._gw.store.list(accounts=record.accounts, open_only=True, limit=_OPEN_ORDERS_LIMIT)
        working = {o.order_id for o in found if o.client_order_id.startswith(prefix)}
        cancelled, failed = 0, []
        for order_id in sorted(recorded | working):
            order = await self._gw.store.get(order_id)
            if order is None or order.is_terminal:
                continue
            try:
                await self._svc.orders.cancel(order_id, caller)
                cancelled += 1
            except ApiError as exc:
                failed.append(f"{order_id}: {exc}")
        return cancelled, failed

    # -- the task ------------------------------------------------------------------------------------

    async def _run(self, live: _Live) -> None:
        """Sessions until the strategy finishes or is stopped; an actor that died is simply opened again."""
        try:
            while not live.stopping:
                try:
                    await self._session(live)
                    return
                except (ray.exceptions.RayActorError, NotOpen) as exc:
                    log.warning("strategy %s: actor lost (%s); reloading it", live.strategy_id, exc)
                except (LogicError, _CannotRun) as exc:
                    await self._fail(live, str(exc))
                    return
                except _Closed as exc:
                    log.warning("strategy %s: %s", live.strategy_id, exc)
                    return
                except Exception as exc:
                    if not database_unreachable(exc):
                        log.exception("strategy %s: unexpected failure; retrying", live.strategy_id)
                    else:  # the session starts again from the saved state once the database is back
                        log.warning(
                            "strategy %s: the database is unreachable (%s); retrying",
                            live.strategy_id,
                            type(exc).__name__,  # a RayTaskError's text is a whole remote traceback
                        )
                await asyncio.sleep(_RETRY_SECONDS)
        finally:
            self._gw.quotes.unsubscribe(live.quote_owner)
            if self._live.get(live.strategy_id) is live:
                del self._live[live.strategy_id]
            with contextlib.suppress(Exception):
                ray.kill(live.actor, no_restart=True)

    async def _fail(self, live: _Live, why: str) -> None:
        """Record the failure, waiting out an unreachable database: given up, the strategy would stay RUNNING in
        the database with no task running it until the daemon restarts."""
        log.warning("strategy %s failed: %s", live.strategy_id, why)
        while True:
            try:
                await self._store.set_status(live.strategy_id, StrategyStatus.FAILED, why, "failed")
                return
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
            await asyncio.sleep(_RETRY_SECONDS)

    async def _session(self, live: _Live) -> None:
        actor = live.actor
        try:
            opened: Opened = await self._actor_call("open", actor.open.remote(self._clock()))
        except ApiError as exc:
            raise _Closed(str(exc)) from exc
        live.updates.clear()
        live.scanned = opened.cursor
        feed = asyncio.create_task(self._feed(live, opened.cursor), name=f"{live.quote_owner}:feed")
        feed.add_done_callback(lambda _: live.wake.set())
        self._watch(live, opened.watch)
        pending = list(opened.outbox)
        next_tick = 0.0
        try:
            while not live.stopping:
                if feed.done():  # a feed that died would leave the strategy deaf: start the session again
                    feed.result()
                    raise RuntimeError("the order event feed ended")
                if pending:
                    answers, done, finished = await self._execute(live, pending)
                    if finished:
                        await self._actor_call("ack", actor.ack.remote(done))
                        return
                    if answers:
                        updates, cursor = self._drain(live)
                        stepped = await self._step(live, [*updates, *answers], cursor, done)
                        pending = list(stepped.commands)
                    else:
                        await self._actor_call("ack", actor.ack.remote(done))
                        pending = []
                    continue
                wait = None if live.paused else max(0.0, next_tick - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await live.wake.wait()
                live.wake.clear()
                if live.stopping or feed.done():
                    continue
                inputs, cursor = self._drain(live)
                if not live.paused and time.monotonic() >= next_tick:
                    inputs.append(await self._tick(live))
                    next_tick = time.monotonic() + TICK_SECONDS
                if inputs:
                    pending = list((await self._step(live, inputs, cursor, ())).commands)
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed

    @staticmethod
    def _drain(live: _Live) -> tuple[list[Input], int]:
        """The order updates waiting, and the cursor to save with them: the last event the feed looked at, which
        moves on even when none of the strategy's orders changed, so a restart does not scan the log again."""
        updates: list[Input] = list(live.updates)
        live.updates.clear()
        return updates, live.scanned

    async def _actor_call(self, method: str, ref: Any) -> Any:
        """A call to the StrategyActor; the host's LogicError and NotOpen come out as themselves (Ray would wrap
        them in a RayTaskError whose text is the whole remote traceback)."""
        try:
            return await self._gw.call("strategy", method, ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, LogicError | NotOpen):
                raise exc.cause from None
            raise

    async def _step(self, live: _Live, inputs: list[Input], cursor: int, done: Iterable[int]) -> Stepped:
        actor = live.actor
        stepped: Stepped = await self._actor_call("step", actor.step.remote(inputs, cursor, list(done)))
        self._watch(live, stepped.watch)
        return stepped

    def _watch(self, live: _Live, watch: Watch) -> None:
        if watch.instruments != live.watch.instruments:
            self._gw.quotes.subscribe(live.quote_owner, watch.instruments)
        live.watch = watch

    async def _feed(self, live: _Live, cursor: int) -> None:
        """The strategy's orders' updates, from the saved cursor on, into its inbox: orders under its client-id
        prefix on its own accounts (only it may use the prefix; the account check keeps even a stray order of
        another user's out)."""
        prefix = order_client_id(live.strategy_id, "")
        accounts = frozenset(live.record.accounts)
        async for event in self._hub.stream(cursor):
            order = event.order
            if order is not None and order.client_order_id.startswith(prefix) and order.account in accounts:
                live.updates.append(OrderUpdate(order.client_order_id.removeprefix(prefix), order))
                live.wake.set()
            live.scanned = event.sequence

    async def _tick(self, live: _Live) -> Tick:
        watch = live.watch
        prices = self._gw.quotes.prices(watch.instruments) if watch.instruments else {}
        pnl: dict[Scope, Decimal] = {}
        if watch.scopes:
            owner = await self._principal(live)
            for scope in watch.scopes:
                try:
                    accounts = self._svc.registry.usable_scope_accounts(scope, owner)
                except ApiError as exc:
                    raise _CannotRun(f"its scope {scope} cannot be watched any more: {exc}") from exc
                pnl[scope] = sum((self._gw.snapshot(a).pnl_today for a in accounts), Decimal(0))
        return Tick(self._clock(), prices, pnl)

    async def _principal(self, live: _Live) -> Principal:
        """The owner as they are now: a removed user's or a non-trader's strategy fails, a changed account list
        applies. The principal carries the strategy's id, which alone may use its reserved order ids."""
        owner = live.record.owner
        user = await self._users.get(owner)
        if user is None:
            raise _CannotRun(f"its owner {owner} no longer exists")
        if not user.role.allows(Role.TRADER):
            raise _CannotRun(f"its owner {owner} is a {user.role} now and may not trade")
        return Principal(user.name, user.role, live.quote_owner, frozenset(user.accounts), live.strategy_id)

    # -- executing commands --------------------------------------------------------------------------

    async def _execute(self, live: _Live, pending: list[Pending]) -> tuple[list[Input], list[int], bool]:
        """Execute in order; return the inputs to feed back (answers to refused order commands), the commands
        done and whether the strategy is over. A SquareOff or SetTradingState that fails ends the strategy as
        FAILED at once, after any trading state that follows it is set: what else follows (a Finish saying it
        was done) would be a lie."""
        owner = await self._principal(live)
        answers: list[Input] = []
        done: list[int] = []
        for n, item in enumerate(pending):
            command = item.command
            if isinstance(command, Finish):
                await self._store.set_status(
                    live.strategy_id, command.status, command.message, command.status.value.lower()
                )
                done.append(item.command_id)
                return answers, done, True
            try:
                await self._one(live, item, owner)
            except ApiError as exc:
                if isinstance(command, SquareOff | SetTradingState):
                    outcomes = [f"{_describe(command)} failed: {exc}"]
                    for later in pending[n + 1 :]:  # restricting the scope is always safe: a failed exit must not
                        if isinstance(later.command, SetTradingState):  # leave it ACTIVE past its loss limit
                            outcomes.append(await self._restrict(live, later, owner))
                    await self._fail(live, "; ".join(outcomes))
                    done.extend(p.command_id for p in pending[n:])
                    return answers, done, True
                answers.extend(await self._answers(live, command, exc))
            done.append(item.command_id)
        return answers, done, False

    async def _restrict(self, live: _Live, item: Pending, owner: Principal) -> str:
        """Set a trading state after the command before it failed; what came of it, for the failure message."""
        try:
            await self._one(live, item, owner)
        except ApiError as exc:
            return f"{_describe(item.command)} failed too: {exc}"
        return f"{_describe(item.command)} done all the same"

    async def _answers(self, live: _Live, command: Command, exc: ApiError) -> list[Input]:
        """What to feed back after an order command was refused: the order's latest state first (a resize refused
        because the order just filled must be judged knowing the fill), then the Refused. A replayed Place whose
        order exists after all (placed before a crash, refused now for another reason) is no refusal at all."""
        sid = live.strategy_id
        found = None
        if isinstance(command, Place):
            found = await self._gw.store.get_by_client_id(order_client_id(sid, command.key))
            if found is not None:
                await self._store.add_order(sid, command.key, found.order_id)
                return [OrderUpdate(command.key, found)]
        elif isinstance(command, Cancel | Modify):
            order_id = (await self._store.orders(sid)).get(command.key)
            found = await self._gw.store.get(order_id) if order_id else None
        await self._store.add_event(sid, "refused", f"{_describe(command)}: {exc}")
        refused = _refusal(command, exc)
        answers: list[Input] = [OrderUpdate(refused.key, found)] if refused and found else []
        return answers + ([refused] if refused else [])

    async def _one(self, live: _Live, item: Pending, owner: Principal) -> None:
        sid = live.strategy_id
        match item.command:
            case Place(key, spec):
                request = orders_pb2.PlaceOrderRequest(
                    client_order_id=order_client_id(sid, key),
                    account=spec.account,
                    instrument=str(spec.instrument),
                    side=convert.side_to_proto(spec.side),
                    quantity=spec.quantity,
                    product=convert.product_to_proto(spec.product),
                    order_type=convert.order_type_to_proto(spec.order_type),
                    price=convert.dec(spec.price),
                    trigger_price=convert.dec(spec.trigger_price),
                    mode=orders_pb2.ROUTING_MODE_STANDARD,
                )
                placed = await self._svc.placement.place(request, owner)
                await self._store.add_order(sid, key, placed.order.order_id)
            case Cancel(key):
                await self._svc.orders.cancel(await self._order_id(sid, key), owner)
            case Modify(key, quantity, price, trigger_price):
                change = ModifyRequest(quantity=quantity, price=price, trigger_price=trigger_price)
                await self._svc.orders.modify(await self._order_id(sid, key), change, owner)
            case SquareOff(scope, reason):
                accounts = self._svc.registry.usable_scope_accounts(scope, owner)
                exited = await self._svc.operations.exit_positions(
                    accounts, None, None, False, order_client_id(sid, f"sq{item.command_id}"), owner,
                    cancel_open_orders=True,
                )  # fmt: skip
                cancel = exited.cancelled
                failed = [
                    f"exit on {leg.account}: {leg.error}" for leg in exited.legs if leg.outcome is LegOutcome.FAILED
                ]
                failed += [
                    f"cancelling {f.order_id} on {f.account}: {f.error}" for f in (cancel.failed if cancel else ())
                ]
                cancelled = len(cancel.cancelled) if cancel else 0
                message = f"squared off {scope} ({reason}): {cancelled} order(s) cancelled, {len(exited.legs)} exit(s)"
                await self._store.add_event(
                    sid, "squared_off", message + (f"; failed: {'; '.join(failed)}" if failed else "")
                )
                if failed:
                    raise FailedPrecondition(f"{len(failed)} part(s) failed: {'; '.join(failed)}")
            case SetTradingState(scope, state, reason):
                self._svc.states.authorize(scope, state, owner, self._svc.registry)
                await self._svc.states.set(scope, state, reason, owner, by=live.quote_owner)
                await self._store.add_event(sid, "trading_state", f"{scope} set to {state}: {reason}")
            case Note(kind, message, key):
                order_id = (await self._store.orders(sid)).get(key, "") if key else ""
                await self._store.add_event(sid, kind, message, order_id)

    async def _order_id(self, strategy_id: str, key: str) -> str:
        order_id = (await self._store.orders(strategy_id)).get(key)
        if order_id is None:
            raise FailedPrecondition(f"the strategy placed no order under key {key!r}")
        return order_id


def _refusal(command: object, exc: ApiError) -> Refused | None:
    """The input telling the logic its order command was refused; other refusals are only events."""
    verbs = {Place: "place", Cancel: "cancel", Modify: "modify"}
    if isinstance(command, Place | Cancel | Modify):
        return Refused(command.key, verbs[type(command)], str(exc))
    return None


def _describe(command: object) -> str:
    match command:
        case Place(key, spec):
            return f"placing {key} ({spec.side} {spec.quantity} {spec.instrument} on {spec.account})"
        case Cancel(key):
            return f"cancelling {key}"
        case Modify(key=key):
            return f"modifying {key}"
        case SquareOff(scope, _):
            return f"squaring off {scope}"
        case SetTradingState(scope, state, _):
            return f"setting {scope} to {state}"
    return type(command).__name__
