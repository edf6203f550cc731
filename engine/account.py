"""One broker account's order lifecycle: submit, modify, cancel, and the periodic broker sync.

This is what the AccountActor runs; it has no Ray in it so it can be tested with a real database
and the paper broker alone. Every state change is persisted (with its event) before it is reported,
and an order is persisted before its broker is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.brokers.base import (
    Ambiguous,
    AuthExpired,
    BrokerAdapter,
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerTrade,
    ModifyRequest,
    PlaceRequest,
    Quote,
    RateLimited,
    Rejected,
    Unavailable,
)
from engine.brokers.pacing import OrderGate, order_windows
from engine.brokers.session import LoginFlow
from engine.domain import IllegalTransition, InstrumentId, Order, OrderRequest, OrderStatus
from engine.domain.accounts import AccountSnapshot, AccountStatus, DayCount, Submission, reconciling
from engine.domain.ids import new_order_id
from engine.domain.sessions import IST
from engine.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceUnavailable
from engine.ledger import day_pnl
from engine.order_sync import apply_broker_view, fills_from, settled_status
from engine.routing import CircuitBreaker
from engine.store.database import database_unreachable
from engine.store.orders import DuplicateFill, OrderStore
from engine.store.sessions import SessionStore

log = logging.getLogger(__name__)

_EWMA = 0.2
DEFAULT_ORDERS_PER_SECOND = 8
DEFAULT_QUEUE_LIMIT = 100
QUOTE_REUSE_SECONDS = 2.0  # a market-data quote younger than this (or the sync interval) serves the sync's marks
DEFAULT_IN_FLIGHT_GRACE = 20.0
KNOWN_ORDERS_DAYS = 7  # broker order books hold a day; ids older than this cannot come back
_DATABASE_DOWN = "database unreachable"


def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> date:
    """The trading day, which is the IST date whatever the host's zone."""
    return _now().astimezone(IST).date()


def _same_order(order: Order, request: OrderRequest) -> bool:
    """Whether a repeated request is the same order; quantity, prices and type may since have been modified."""
    mine = (order.account, order.instrument, order.side, order.product)
    return mine == (request.account, request.instrument, request.side, request.product)


class AccountRuntime:
    def __init__(
        self,
        account: str,
        broker: str,
        adapter: BrokerAdapter,
        store: OrderStore,
        sync_interval: float,
        *,
        sessions: SessionStore | None = None,
        auto_login: Callable[[str], Awaitable[str]] | None = None,
        gate: OrderGate | None = None,
        breaker: CircuitBreaker | None = None,
        in_flight_grace: float = DEFAULT_IN_FLIGHT_GRACE,
    ) -> None:
        """`auto_login` turns a login URL into the broker's redirect URL without a person (simulators).

        Without `gate`, orders go at the default 8 a second within the broker's caps. An order in flight that no
        call here is sending and that the broker's book still lacks `in_flight_grace` seconds after it was last
        sent (or after this start) never reached the broker, and is rejected as such.
        """
        self.account = account
        self.broker = broker
        self._adapter = adapter
        self._store = store
        self._sessions = sessions
        self._auto_login = auto_login
        self._session_expires: datetime | None = None
        self._interval = sync_interval
        self._live: dict[str, Order] = {}
        self._sending: set[str] = set()  # in flight from this process: stored, waiting for its turn or the broker
        self._unsent: set[str] = set()  # intents whose insert failed in a way that may have committed: never sent
        self._sent_at: dict[str, datetime] = {}  # when each live order was last handed to the broker
        self._broker_ids: set[str] = set()  # broker order ids the daemon's orders already stand for
        self._grace = timedelta(seconds=in_flight_grace)
        self._started_at = _now()
        self._trade_ids: set[str] = set()
        self._state_lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._snapshot = AccountSnapshot(account, broker, AccountStatus.RECONCILING)
        pace = order_windows(DEFAULT_ORDERS_PER_SECOND, adapter.order_limits)
        self._gate = gate or OrderGate(account, pace, DEFAULT_QUEUE_LIMIT, _now)
        self._breaker = breaker or CircuitBreaker()
        self._error_rate = 0.0
        self._rate_limited = 0
        self._orders_today = DayCount(_today())
        self._quoted: dict[InstrumentId, tuple[float, Quote]] = {}  # market data's answers, monotonic arrival

    async def start(self) -> None:
        """Recovery: reload from the database, then reconcile with the broker; until that succeeds the account
        is RECONCILING and refuses orders (the sync loop keeps trying)."""
        self._started_at = _now()
        self._live = {o.order_id: o for o in await self._store.live_orders(self.account)}
        self._broker_ids = await self._store.broker_order_ids(
            self.account, self._started_at - timedelta(days=KNOWN_ORDERS_DAYS)
        )
        today = _today()
        midnight = datetime.combine(today, datetime.min.time(), tzinfo=IST)
        self._orders_today = DayCount(today, await self._store.count_since(self.account, midnight))
        self._trade_ids = await self._known_trades()
        for order in list(self._live.values()):
            if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_MODIFY):
                await self._settle(order.order_id, f"{order.status} interrupted by a restart; repeat it if needed")
        await self._restore_session()
        await self.sync()
        self._loop_task = asyncio.create_task(self._sync_loop(), name=f"sync:{self.account}")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._adapter.close()

    def snapshot(self) -> AccountSnapshot:
        return replace(
            self._snapshot,
            open_orders=len(self._live),
            circuit=self._breaker.state,
            error_rate=round(self._error_rate, 4),
            queue_depth=self._gate.waiting,
            rate_limited=self._rate_limited,
            orders_today=self._orders_today,
        )

    # -- broker login -----------------------------------------------------------------------------

    def _login_flow(self) -> LoginFlow:
        if not isinstance(self._adapter, LoginFlow):
            raise FailedPrecondition(f"account {self.account} ({self.broker}) needs no broker login")
        return self._adapter

    def login_url(self) -> str:
        return self._login_flow().login_url()

    async def complete_login(self, redirect: str) -> None:
        """Turn the broker's redirect (or bare token) into a session, save it, and sync at once."""
        flow = self._login_flow()
        try:
            session = await flow.complete_login(redirect)
        except ValueError as exc:
            raise InvalidArgument("redirect", str(exc)) from None
        except BrokerError as exc:
            raise FailedPrecondition(f"login to {self.broker} failed: {exc}") from None
        if self._sessions is not None:
            await self._sessions.save(self.account, session)
        self._session_expires = session.expires_at
        self._snapshot = replace(self._snapshot, status=AccountStatus.RECONCILING, login_url="", last_error="")
        log.info("account %s logged in to %s as %s", self.account, self.broker, session.user_id)
        await self.sync()

    async def _restore_session(self) -> None:
        if not isinstance(self._adapter, LoginFlow):
            return
        saved = await self._sessions.get(self.account) if self._sessions else None
        if saved is not None and saved.expires_at > _now():
            self._adapter.use_session(saved)
            self._session_expires = saved.expires_at
            return
        if self._auto_login is not None:
            try:
                await self.complete_login(await self._auto_login(self._adapter.login_url()))
                return
            except Exception as exc:  # fall through: the account waits for a manual login
                log.warning("automatic login of %s failed: %s", self.account, exc)
        self._needs_login("no broker session; log in first")

    def _needs_login(self, why: str) -> None:
        url = self._adapter.login_url() if isinstance(self._adapter, LoginFlow) else ""
        self._snapshot = replace(self._snapshot, status=AccountStatus.LOGIN_REQUIRED, login_url=url, last_error=why)

    # -- commands -------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> Submission:
        """Place an order. A repeated client_order_id sends nothing and returns the original, as a duplicate.

        Refusals that happen before the intent is persisted (login needed, circuit open, queue full) raise;
        after that every outcome is an order: in flight when the broker may have it, REJECTED otherwise.
        """
        self._check_session_expiry()
        if self._snapshot.status is AccountStatus.LOGIN_REQUIRED:
            raise FailedPrecondition(
                f"account {self.account} needs a broker login: run `trademaster accounts login {self.account}`"
            )
        unreconciled = self._snapshot.status is AccountStatus.RECONCILING
        if unreconciled or not self._breaker.would_allow() or self._gate.full:
            # A retry of an order already stored must get that order back, not a refusal.
            known = await self._store.get_by_client_id(request.client_order_id)
            if known is not None:
                return await self._again(known, request)
            if unreconciled:
                raise ServiceUnavailable(reconciling(self.account, self._snapshot.last_error))
            if not self._breaker.would_allow():
                raise ServiceUnavailable(
                    f"account {self.account}: not sending to {self.broker}, its circuit is"
                    f" {self._breaker.state.value.lower().replace('_', '-')} after"
                    f" {self._breaker.consecutive_failures} failures in a row ({self._breaker.last_failure});"
                    f" next try in {self._breaker.retry_in():.0f} s"
                )
        intent = self._intent(request.client_order_id, request, parent_order_id=request.parent_order_id)
        self._sending.add(intent.order_id)  # from before it is stored, so no sync sees it stored and unclaimed
        try:
            with self._gate.queued():
                try:
                    order, events = await self._store.insert_new(intent)
                except Exception as exc:
                    if database_unreachable(exc):  # its commit's answer may be what was lost: the sync looks
                        self._unsent.add(intent.order_id)
                    raise
                if not events:
                    return await self._again(order, request)
                self._live[order.order_id] = order
                turn = await self._gate.turn()
            try:
                return await self._send(order)
            finally:
                self._gate.reached(turn)
        finally:
            self._sending.discard(intent.order_id)  # a wait cancelled before sending leaves it to the grace

    async def _send(self, order: Order) -> Submission:
        """Hand a stored order to the broker; every outcome is persisted on the order before it is returned."""
        if not self._breaker.allow():
            why = f"not sent: {self.broker}'s circuit is not letting orders through ({self._breaker.last_failure})"
            return self._submission(await self._update(order.order_id, OrderStatus.REJECTED, status_message=why), True)
        started = time.perf_counter()
        self._sent_at[order.order_id] = _now()
        try:
            broker_id = await self._adapter.place(
                PlaceRequest(
                    tag=order.order_id,
                    instrument=order.instrument,
                    side=order.side,
                    quantity=order.quantity,
                    product=order.product,
                    order_type=order.order_type,
                    price=order.price,
                    trigger_price=order.trigger_price,
                )
            )
        except Ambiguous as exc:
            # It may be at the broker: keep it in flight; the sync finds it by tag.
            self._observe(exc)
            log.warning("order %s in flight after ambiguous submission: %s", order.order_id, exc)
            return self._submission(await self._answered(order.order_id, None, status_message=f"in flight: {exc}"))
        except BrokerError as exc:
            self._observe(exc)
            self._note_broker_error(exc)
            unreached = isinstance(exc, Unavailable | RateLimited)
            message = f"not sent: {exc}" if unreached else str(exc)
            rejected = await self._answered(order.order_id, OrderStatus.REJECTED, status_message=message)
            return self._submission(rejected, unreached)
        self._observe(None)
        self._note_ack((time.perf_counter() - started) * 1000)
        acked = await self._answered(order.order_id, OrderStatus.OPEN, broker_order_id=broker_id)
        self._kick.set()
        return self._submission(acked)

    def _intent(self, client_order_id: str, shape: OrderRequest | BrokerOrder, **extra: Any) -> Order:
        """A new order of this account, SUBMITTED: one a client asks for, or one found at the broker."""
        now = _now()
        return Order(
            order_id=new_order_id(),
            client_order_id=client_order_id,
            account=self.account,
            instrument=shape.instrument,
            side=shape.side,
            quantity=shape.quantity,
            product=shape.product,
            order_type=shape.order_type,
            price=shape.price,
            trigger_price=shape.trigger_price,
            status=OrderStatus.SUBMITTED,
            created_at=now,
            updated_at=now,
            **extra,
        )

    async def _again(self, order: Order, request: OrderRequest) -> Submission:
        """A repeated client_order_id gets its order; one whose storing failed here (never sent) is given up first."""
        if order.order_id in self._unsent:
            self._duplicate(order, request)  # the same order, or it raises
            order = await self._give_up_unsent(order)
        return self._duplicate(order, request)

    def _duplicate(self, order: Order, request: OrderRequest) -> Submission:
        if not _same_order(order, request):
            raise FailedPrecondition(
                f"client_order_id {request.client_order_id} was already used for a different order; use a new id"
            )
        return self._submission(order, duplicate=True)

    def _submission(self, order: Order, unreached: bool = False, duplicate: bool = False) -> Submission:
        """Every submission that is not a duplicate stored a new order, so it counts toward today's orders.

        Counted when the reply leaves, not when the intent is stored: the gateway counts an order as in flight
        until the reply arrives, and counting it here earlier would count it twice while it waits its turn.
        """
        if not duplicate:
            today = _today()
            self._orders_today = DayCount(today, self._orders_today.on(today) + 1)
        circuit = self._breaker.state
        return Submission(order, duplicate, unreached, circuit, orders_today=self._orders_today)

    async def last_price(self, instrument: InstrumentId) -> Decimal | None:
        """The broker's last traded price, for valuing a market order before it is routed."""
        quotes = await self._adapter.quotes([instrument])
        quote = quotes.get(instrument)
        return quote.last_price if quote else None

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        """The broker's quotes for the market-data actor, which chooses the batches and keeps within the
        quote limit; kept, so the next sync need not spend the same limit asking for them again."""
        self._check_session_expiry()
        if self._snapshot.status is AccountStatus.LOGIN_REQUIRED:
            raise FailedPrecondition(f"account {self.account} needs a broker login before it can quote")
        try:
            quotes = await self._adapter.quotes(instruments)
        except BrokerError as exc:
            if isinstance(exc, RateLimited):
                self._rate_limited += 1
            raise ServiceUnavailable(f"account {self.account}: {self.broker} quotes failed: {exc}") from None
        now = time.monotonic()
        self._quoted.update((i, (now, q)) for i, q in quotes.items())
        return quotes

    async def _sync_quotes(self, wanted: set[InstrumentId]) -> dict[InstrumentId, Quote]:
        """Quotes for the sync's marks: market data's recent answers, and the broker for the rest."""
        fresh_after = time.monotonic() - max(self._interval, QUOTE_REUSE_SECONDS)
        recent = {i: held[1] for i in wanted if (held := self._quoted.get(i)) and held[0] >= fresh_after}
        rest = sorted(wanted - recent.keys())
        return {**recent, **(await self._adapter.quotes(rest) if rest else {})}

    async def cancel(self, order_id: str) -> Order:
        await self._live_order(order_id)
        async with self._paced():  # before PENDING_CANCEL: a full queue or a cancelled wait must leave no trace
            order = await self._live_order(order_id)
            await self._update(order_id, OrderStatus.PENDING_CANCEL)
            try:
                await self._adapter.cancel(order.broker_order_id or "")
                self._observe(None)
            except BrokerError as exc:
                self._observe(exc)
                self._note_broker_error(exc)
                await self._settle(order_id, f"cancel refused: {exc}")
                await self.sync()
                raise FailedPrecondition(f"broker refused the cancel of {order_id}: {exc}") from None
        await self.sync()
        return await self._current(order_id)

    async def modify(self, order_id: str, change: ModifyRequest) -> Order:
        await self._live_order(order_id)
        async with self._paced():  # before PENDING_MODIFY, as in cancel
            order = await self._live_order(order_id)
            if change.quantity is not None and change.quantity <= order.filled_quantity:
                raise FailedPrecondition(
                    f"quantity {change.quantity} is not above the {order.filled_quantity} already filled"
                )
            await self._update(order_id, OrderStatus.PENDING_MODIFY)
            try:
                await self._adapter.modify(order.broker_order_id or "", change)
                self._observe(None)
            except BrokerError as exc:
                self._observe(exc)
                self._note_broker_error(exc)
                await self._settle(order_id, f"modify refused: {exc}")
                await self.sync()
                raise FailedPrecondition(f"broker refused the modification of {order_id}: {exc}") from None
        await self._settle(order_id, "", change)
        await self.sync()
        return await self._current(order_id)

    @contextlib.asynccontextmanager
    async def _paced(self) -> AsyncIterator[None]:
        """Wait for an order-category turn (cancels and modifications count against the broker's limit), for a
        block that sends the request; the request counts from when the block ends (OrderGate.reached)."""
        with self._gate.queued():
            turn = await self._gate.turn()
        try:
            yield
        finally:
            self._gate.reached(turn)

    # -- state changes (each persisted with its event before it is visible) -----------------------

    async def _live_order(self, order_id: str) -> Order:
        if self._snapshot.status is AccountStatus.RECONCILING:
            raise ServiceUnavailable(reconciling(self.account, self._snapshot.last_error))
        order = self._live.get(order_id)
        if order is None:
            stored = await self._store.get(order_id)
            if stored is None or stored.account != self.account:
                raise NotFound(f"order {order_id} not found")
            raise FailedPrecondition(f"order {order_id} is {stored.status} and can no longer change")
        if order.broker_order_id is None:
            raise FailedPrecondition(f"order {order_id} is still in flight to the broker; try again shortly")
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_MODIFY):
            raise FailedPrecondition(f"order {order_id} is {order.status}; wait for the broker's answer")
        return order

    async def _current(self, order_id: str) -> Order:
        return self._live.get(order_id) or await self._store.get(order_id)  # type: ignore[return-value]

    async def _update(self, order_id: str, status: OrderStatus | None = None, **changes: object) -> Order:
        async with self._state_lock:
            order = self._live[order_id]
            updated = order.moved_to(status or order.status, _now(), **changes)
            await self._save(updated)
            return updated

    async def _answered(self, order_id: str, status: OrderStatus | None, **changes: object) -> Order:
        """Record the broker's answer to a submission, unless a sync found the order at the broker by its tag
        while the answer was on its way (it may have timed out or been lost): then the broker's view stands."""
        async with self._state_lock:
            order = self._live.get(order_id)
            if order is None or order.broker_order_id:
                return order or await self._store.get(order_id)  # type: ignore[return-value]
            updated = order.moved_to(status or order.status, _now(), **changes)
            await self._save(updated)
            return updated

    async def _settle(self, order_id: str, message: str, change: ModifyRequest | None = None) -> None:
        """Return a pending order to its working status, applying an accepted modification."""
        async with self._state_lock:
            order = self._live.get(order_id)
            if order is None or order.status not in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_MODIFY):
                return
            fields: dict[str, object] = {"status_message": message}
            if change is not None:
                fields.update(
                    {
                        k: v
                        for k, v in (
                            ("quantity", change.quantity),
                            ("price", change.price),
                            ("trigger_price", change.trigger_price),
                            ("order_type", change.order_type),
                        )
                        if v is not None
                    }
                )
            settled = replace(order, **fields)  # type: ignore[arg-type]
            await self._save(settled.moved_to(settled_status(settled), _now()))

    async def _save(self, order: Order, fills: Sequence = ()) -> None:
        await self._store.record(order, fills)
        self._trade_ids.update(f.trade_id for f in fills)
        if order.broker_order_id:
            self._broker_ids.add(order.broker_order_id)
        if order.is_terminal:
            self._live.pop(order.order_id, None)
            self._sent_at.pop(order.order_id, None)
        else:
            self._live[order.order_id] = order

    # -- sync with the broker ---------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races the kick.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._kick.wait()
            self._kick.clear()
            await self.sync()

    async def sync(self) -> None:
        """Pull the broker's orders, trades and account state and fold them in; never raises."""
        self._check_session_expiry()
        if self._snapshot.status is AccountStatus.LOGIN_REQUIRED:
            return  # nothing to ask the broker until someone logs in
        async with self._sync_lock:
            if not self._breaker.allow():
                return  # open circuit: wait for the half-open trial
            try:
                asked_at = _now()
                orders = await self._adapter.orders()
                trades = await self._adapter.trades()
                await self._fold(orders, trades, asked_at)
                if self._snapshot.status is AccountStatus.RECONCILING:  # the books agree: orders may go again
                    self._snapshot = replace(self._snapshot, status=AccountStatus.DEGRADED)
                funds_at = _now()
                funds = await self._adapter.funds()
                holdings = await self._adapter.holdings()
                positions = await self._adapter.positions()
                wanted = {h.instrument for h in holdings} | {p.instrument for p in positions}
                wanted |= {o.instrument for o in self._live.values()}
                quotes = await self._sync_quotes(wanted)
            except BrokerError as exc:
                self._observe(exc)
                if isinstance(exc, Rejected):  # a read the broker refused: the account cannot be followed
                    self._note_error(f"{type(exc).__name__}: {exc}")
                self._note_broker_error(exc)
                return
            except Exception as exc:  # a sync must never kill the account
                if database_unreachable(exc):  # not the broker's doing: nothing against it, one line an outage
                    if not self._snapshot.last_error.startswith(_DATABASE_DOWN):
                        log.warning("sync of %s: %s (%s); retrying", self.account, _DATABASE_DOWN, exc)
                    self._note_error(f"{_DATABASE_DOWN}: {exc}")
                    return
                self._observe(exc)
                log.exception("sync of %s failed", self.account)
                self._note_broker_error(exc)
                return
            self._observe(None)
            marks: dict[InstrumentId, object] = {p.instrument: p.last_price for p in positions}
            marks.update({h.instrument: h.last_price for h in holdings})
            marks.update({i: q.last_price for i, q in quotes.items()})
            self._snapshot = replace(
                self._snapshot,
                status=AccountStatus.ACTIVE,
                last_sync=_now(),
                last_error="",
                consecutive_errors=0,
                funds=funds,
                funds_at=funds_at,
                holdings=tuple(holdings),
                positions=tuple(positions),
                marks=marks,  # type: ignore[arg-type]
                pnl_today=day_pnl(trades, marks, _today()),  # type: ignore[arg-type]
            )

    async def _fold(self, orders: list[BrokerOrder], trades: list[BrokerTrade], asked_at: datetime) -> None:
        """Reconcile with the broker's complete order and trade books, asked for at `asked_at`: in-flight orders
        are found by tag or, once past the grace, rejected as never sent; orders nobody here placed are adopted
        as EXTERNAL; every trade not yet recorded becomes a fill of its order."""
        by_id = {o.broker_order_id: o for o in orders}
        by_tag = {o.tag: o for o in orders if o.tag}
        new_trades: dict[str, list[BrokerTrade]] = {}
        fresh: set[str] = set()
        for trade in trades:
            if trade.trade_id not in self._trade_ids and trade.trade_id not in fresh:  # listed twice: one fill
                fresh.add(trade.trade_id)
                new_trades.setdefault(trade.broker_order_id, []).append(trade)
        for order_id in list(self._unsent):
            stored = await self._store.get(order_id)
            if stored is None:
                self._unsent.discard(order_id)
            else:
                await self._give_up_unsent(stored)
        async with self._state_lock:
            for broker in orders:
                if broker.broker_order_id not in self._broker_ids and broker.tag not in self._live:
                    await self._adopt(broker)
            folded = {o.broker_order_id for o in self._live.values() if o.broker_order_id}
            for order in list(self._live.values()):
                broker = by_id.get(order.broker_order_id or "") or by_tag.get(order.order_id)
                if broker is None:
                    if self._never_sent(order, asked_at):
                        why = (
                            f"not sent: {self.broker} has no order tagged {order.order_id}"
                            f" {self._grace.total_seconds():.0f} s after it was sent or the daemon restarted"
                        )
                        await self._save(order.moved_to(OrderStatus.REJECTED, _now(), status_message=why))
                    continue
                folded.add(broker.broker_order_id)
                try:
                    updated, fills = apply_broker_view(
                        order, broker, new_trades.get(broker.broker_order_id, []), _now()
                    )
                except IllegalTransition as exc:
                    log.error("order %s: broker view ignored: %s", order.order_id, exc)
                    continue
                if updated != order or fills:
                    try:
                        await self._save(updated, fills)
                    except DuplicateFill as exc:
                        log.error("%s; reloading order %s from the database", exc, order.order_id)
                        await self._reload(order.order_id)
            for broker_order_id in new_trades.keys() - folded:
                await self._late_trades(broker_order_id, new_trades[broker_order_id])

    async def _late_trades(self, broker_order_id: str, trades: list[BrokerTrade]) -> None:
        """Trades reported after their order ended here (a trade book lagging its order book): still fills."""
        order = await self._store.get_by_broker_id(self.account, broker_order_id)
        if order is None or not order.is_terminal:
            log.warning("account %s: trades of broker order %s, which no finished order stands for, wait for"
                        " the next sync", self.account, broker_order_id)  # fmt: skip
            return
        fills = fills_from(order, trades)
        updated = order
        for fill in fills:
            updated = updated.with_fill(fill)
        if updated.filled_quantity > updated.quantity:
            log.error("account %s: order %s would fill %d of %d; its late trades are not applied", self.account,
                      order.order_id, updated.filled_quantity, updated.quantity)  # fmt: skip
            return
        try:
            await self._save(updated, fills)
        except DuplicateFill as exc:
            log.error("%s; reloading the recorded trades", exc)
            self._trade_ids = await self._known_trades()

    def _never_sent(self, order: Order, asked_at: datetime) -> bool:
        if order.broker_order_id or order.order_id in self._sending:
            return False
        last_sent = self._sent_at.get(order.order_id, order.updated_at)
        return asked_at - max(order.updated_at, last_sent, self._started_at) > self._grace

    async def _give_up_unsent(self, order: Order) -> Order:
        """Reject an intent whose storing failed (the database went away), which this process therefore never
        sent: at once, rather than after the grace, so a client's retry learns to place it again."""
        if order.status is not OrderStatus.SUBMITTED or order.broker_order_id:
            self._unsent.discard(order.order_id)
            return order
        why = "not sent: the database failed while the order was being stored; place it again with a new id"
        rejected = order.moved_to(OrderStatus.REJECTED, _now(), status_message=why)
        async with self._state_lock:
            if order.order_id in self._unsent:  # not given up meanwhile by a sync or a retry
                await self._save(rejected)
                self._unsent.discard(order.order_id)
                return rejected
        return await self._store.get(order.order_id) or rejected

    async def _adopt(self, broker: BrokerOrder) -> None:
        """Take in a broker order no daemon order stands for yet, so that none is unknown and its fills count.

        One that carries a finished daemon order's tag and never traded is that order (the broker's record of a
        refusal whose answer had no id): it only gains its broker id. One that traded is adopted as EXTERNAL.
        """
        why = f"EXTERNAL: found at {self.broker}, not placed by the daemon"
        tagged = await self._store.get(broker.tag) if broker.tag else None
        if tagged is not None and tagged.account == self.account:
            ended = broker.status in (BrokerOrderStatus.REJECTED, BrokerOrderStatus.CANCELLED)
            if ended and not broker.filled_quantity and tagged.is_terminal and not tagged.broker_order_id:
                await self._save(replace(tagged, broker_order_id=broker.broker_order_id))
                return
            log.error("account %s: broker order %s carries the tag of %s order %s", self.account,
                      broker.broker_order_id, tagged.status, tagged.order_id)  # fmt: skip
            why += f"; it carries the tag of daemon order {tagged.order_id}, which is {tagged.status}"
        intent = self._intent(
            f"external:{self.account}:{broker.broker_order_id}",
            broker,
            broker_order_id=broker.broker_order_id,
            status_message=why,
            external=True,
        )
        order, _ = await self._store.insert_new(intent)  # adopted before, if it exists: load it again
        self._broker_ids.add(broker.broker_order_id)
        if not order.is_terminal:
            self._live[order.order_id] = order
        log.warning("account %s: adopted %s order %s as %s", self.account, self.broker, broker.broker_order_id,
                    order.order_id)  # fmt: skip

    async def _known_trades(self) -> set[str]:
        """The recorded trades a broker may report again: those of the last KNOWN_ORDERS_DAYS, and all of the live
        orders'. Only a live order's trades are folded in (`_fold`), and a broker's trade book holds a day; reading
        every trade ever made would make each start slower than the last."""
        since = _now() - timedelta(days=KNOWN_ORDERS_DAYS)
        return await self._store.trade_ids(self.account, since, self._live.keys())

    async def _reload(self, order_id: str) -> None:
        """Make the in-memory view match the database again after it was found stale."""
        self._trade_ids = await self._known_trades()
        stored = await self._store.get(order_id)
        if stored is None or stored.is_terminal:
            self._live.pop(order_id, None)
        else:
            self._live[order_id] = stored

    def _observe(self, exc: BaseException | None) -> None:
        """Feed one broker outcome to the circuit breaker and the failure rate routing reads."""
        if isinstance(exc, Unavailable | Ambiguous):
            self._breaker.record_failure(f"{type(exc).__name__}: {exc}")
        else:
            self._breaker.record_success()  # the broker answered, even if to refuse
        if isinstance(exc, RateLimited):
            self._rate_limited += 1
            log.error("account %s: %s answered 429 despite pacing: %s", self.account, self.broker, exc)
        self._error_rate += _EWMA * ((exc is not None) - self._error_rate)

    def _note_ack(self, millis: float) -> None:
        previous = self._snapshot.ack_latency_ms
        value = millis if previous == 0 else previous + _EWMA * (millis - previous)
        self._snapshot = replace(self._snapshot, ack_latency_ms=value)

    def _note_error(self, why: str) -> None:
        unreconciled = self._snapshot.status is AccountStatus.RECONCILING
        self._snapshot = replace(
            self._snapshot,
            status=AccountStatus.RECONCILING if unreconciled else AccountStatus.DEGRADED,
            last_error=why,
            consecutive_errors=self._snapshot.consecutive_errors + 1,
        )

    def _check_session_expiry(self) -> None:
        if self._session_expires is not None and _now() >= self._session_expires:
            self._session_expires = None
            self._needs_login("the broker session expired; log in again")

    def _note_broker_error(self, exc: Exception) -> None:
        if isinstance(exc, Rejected):
            return  # a refused order says nothing about the account's health
        self._note_error(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, AuthExpired):
            self._needs_login(f"{type(exc).__name__}: {exc}")
