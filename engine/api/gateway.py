"""The gateway process's view of the daemon: actor handles plus cached account state.

Requests are validated here, on cached state, so the order path crosses exactly one Ray boundary:
gateway -> AccountActor.submit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import ray.exceptions

from engine.api.metrics import ACTOR_CALL, BROKER_429, CIRCUIT_STATE, ORDER_QUEUE
from engine.api.quotes import QuoteBook
from engine.config import AccountSettings
from engine.domain import Instrument, InstrumentId
from engine.domain.accounts import AccountSnapshot, AccountStatus, CircuitState, Submission
from engine.errors import ApiError, InvalidArgument, NotFound
from engine.instrument_master import InstrumentMaster
from engine.ledger import LedgerReplica
from engine.portfolio import Portfolio, PortfolioView
from engine.security.principal import Principal
from engine.store.orders import OrderStore

log = logging.getLogger(__name__)
T = TypeVar("T")

SNAPSHOT_SECONDS = 1.0
VIEWS_KEPT = 16  # account sets whose portfolio is kept between reads (callers see different sets)
_CIRCUIT_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True)
class AccountHandle:
    settings: AccountSettings
    actor: Any  # ray.actor.ActorHandle of AccountActor


class Gateway:
    def __init__(
        self,
        accounts: Sequence[AccountHandle],
        default_account: str | None,
        ledger: Any,
        store: OrderStore,
        instruments: InstrumentMaster,
        *,
        market_data: Any,
        quote_timeout: float,
        quote_max_age: float,
    ) -> None:
        """`market_data`: the MarketDataActor, whose quotes the QuoteBook (`quotes`) mirrors here."""
        self.accounts = {a.settings.id: a for a in accounts}
        self.default_account = default_account
        self.ledger = ledger
        self.store = store
        self.instruments = instruments
        self._snapshots: dict[str, AccountSnapshot] = {
            a.settings.id: AccountSnapshot(a.settings.id, a.settings.broker_name, AccountStatus.RECONCILING)
            for a in accounts
        }
        self._task: asyncio.Task[None] | None = None
        self.quotes = QuoteBook(market_data, self.call, quote_timeout, quote_max_age)
        self._ledger_copy = LedgerReplica()  # the ledger's books, brought up to date by each portfolio read
        self._portfolio = Portfolio(self.quotes.latest)  # the accounts read, marked; kept between reads
        self._views: OrderedDict[tuple[str, ...], PortfolioView] = OrderedDict()  # by account set, least recent first

    async def call(self, actor: str, method: str, ref: Awaitable[T]) -> T:
        """Await an actor call, timing it; an ApiError the actor raised is re-raised as itself."""
        started = time.perf_counter()
        try:
            return await ref
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ApiError):
                raise exc.cause from None
            raise
        finally:
            ACTOR_CALL.labels(actor, method).observe(time.perf_counter() - started)

    def account(self, field: str, account_id: str, caller: Principal) -> AccountHandle:
        """The named account, else the caller's default: the configured default if theirs, else their only one."""
        name = account_id or self._default_for(caller)
        if not name:
            why = "the default account is not yours" if self.default_account else "no default account is configured"
            raise InvalidArgument(field, f"required: {why}, name one of {caller.user}'s accounts")
        handle = self.accounts.get(name)
        if handle is None:
            raise InvalidArgument(field, f"unknown account {name!r}")
        caller.require(name)
        return handle

    def _default_for(self, caller: Principal) -> str | None:
        if self.default_account and caller.may_use(self.default_account):
            return self.default_account
        mine = caller.visible(self.accounts)
        return mine[0] if len(mine) == 1 else None

    def require_account(self, account_id: str, caller: Principal) -> AccountHandle:
        handle = self.accounts.get(account_id)
        if handle is None:
            raise NotFound(f"account {account_id!r} not found")
        caller.require(account_id)
        return handle

    def broker_of(self, account_id: str) -> str:
        handle = self.accounts.get(account_id)
        return handle.settings.broker_name if handle else ""

    def lookup(self, key: InstrumentId) -> Instrument | None:
        return self.instruments.get(key)

    def snapshot(self, account_id: str) -> AccountSnapshot:
        return self._snapshots[account_id]

    def note_submission(self, account_id: str, sent: Submission) -> None:
        """Take the circuit state a submission reports at once, not at the next snapshot."""
        snap = self._snapshots[account_id]
        if snap.circuit is not sent.circuit:
            self._publish(replace(snap, circuit=sent.circuit))

    def _publish(self, snap: AccountSnapshot) -> None:
        """Keep the snapshot unless an equal one is kept: the portfolio re-marks an account's rows when its snapshot
        is a new object, and the actors answer a new object to every poll."""
        if self._snapshots.get(snap.account) != snap:
            self._snapshots[snap.account] = snap
        CIRCUIT_STATE.labels(snap.account).set(_CIRCUIT_GAUGE[snap.circuit])
        ORDER_QUEUE.labels(snap.account).set(snap.queue_depth)
        BROKER_429.labels(snap.account).set(snap.rate_limited)

    async def refresh(self, account_id: str) -> AccountSnapshot:
        """The account's state right after a sync with its broker, also replacing the cached one, so the checks
        of an order placed next (risk, trading state) see it too."""
        snap: AccountSnapshot = await self.call(
            "account", "sync_now", self.accounts[account_id].actor.sync_now.remote()
        )
        self._publish(snap)
        return snap

    async def refresh_snapshots(self) -> None:
        names = list(self.accounts)
        results = await asyncio.gather(
            *(self.call("account", "snapshot", self.accounts[n].actor.snapshot.remote()) for n in names),
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, AccountSnapshot):
                self._publish(result)
            else:
                log.warning("snapshot of %s failed: %s", name, result)
        self._follow_positions()

    def _follow_positions(self) -> None:
        """Keep the instruments of every open position (the brokers' and the ledger's) followed, so their
        marks stay fresh between account syncs."""
        held = {p.instrument for snap in self._snapshots.values() for p in snap.positions if p.quantity}
        self.quotes.subscribe("portfolio", held | self._portfolio.open_instruments())

    async def start(self) -> None:
        self.quotes.start()
        await self.refresh_snapshots()
        self._task = asyncio.create_task(self._poll(), name="account-snapshots")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.quotes.stop()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            await self.refresh_snapshots()

    async def portfolio(self, account_ids: Sequence[str], caller: Principal) -> PortfolioView:
        """The accounts' portfolio (the caller's, if none are named), brought up to date from what changed since
        the last read: the ledger's books, the accounts' snapshots, the quotes."""
        for name in account_ids:
            self.require_account(name, caller)
        wanted = tuple(dict.fromkeys(account_ids)) or tuple(caller.visible(self.accounts))
        copy = self._ledger_copy
        epoch = copy.epoch
        changed = copy.update(
            *await self.call("ledger", "changes", self.ledger.changes.remote(copy.epoch, copy.version))
        )
        if copy.epoch != epoch:  # a restarted ledger: a kept view would still hold books that are gone
            self._views.clear()
        try:
            books = self._portfolio.update(copy, changed, self._snapshots, wanted)
            view = self._views.pop(wanted, None) or PortfolioView()
            view.refresh(books)
        except BaseException:  # kept state may be half updated, and the copy's changes are not asked for again
            self._portfolio.forget()
            self._views.clear()
            raise
        self._views[wanted] = view
        if len(self._views) > VIEWS_KEPT:
            self._views.popitem(last=False)
        if self._portfolio.open_changed:
            self._follow_positions()
        return view
