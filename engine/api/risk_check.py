"""Pre-trade risk in the gateway: the pure rules (engine.risk) fed from the cached account snapshots.

No actor call and no database read: a snapshot is at most about a second old, and what the gateway sent
since it was taken (the holds of engine.routing.reservations) is added on top, so a burst of orders cannot
slip past a position limit or the daily order cap between two snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from engine.api.gateway import Gateway
from engine.domain import Instrument, InstrumentId, OrderRequest
from engine.domain.accounts import NO_COUNT, AccountSnapshot, AccountStatus, DayCount, Submission, reconciling
from engine.domain.sessions import IST
from engine.errors import ServiceUnavailable
from engine.risk import RiskContext, RiskLimits, RiskViolation, SessionCalendar, check_order
from engine.routing import Hold, Reservations, claim


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_context(
    snapshot: AccountSnapshot,
    instrument: InstrumentId,
    last_price: Decimal | None,
    unsynced: Sequence[Hold],
    orders_today: int,
) -> RiskContext:
    """The account as the rules must see it: its snapshot plus the orders sent since, as if they had filled.

    Counting unsynced orders as filled errs toward refusing: an order sent a moment ago may fill any time.
    Orders the snapshot already shows as working do not count, as the rules define (fills only).
    """
    net: dict[InstrumentId, int] = {}
    for key, units in (
        *((p.instrument, p.quantity) for p in snapshot.positions),
        *((h.instrument, h.quantity) for h in snapshot.holdings),
        *((h.instrument, h.quantity) for h in unsynced),
    ):
        net[key] = net.get(key, 0) + units
    prices = {h.instrument: h.price for h in unsynced} | snapshot.marks
    if last_price is not None:
        prices[instrument] = last_price
    gross = sum((abs(units) * prices.get(key, Decimal(0)) for key, units in net.items()), Decimal(0))
    selling = sum(h.shares for h in unsynced if h.instrument == instrument)
    return RiskContext(
        last_price=last_price,
        net_quantity=net.get(instrument, 0),
        holdings_quantity=max(0, snapshot.deliverable(instrument) - selling),
        gross_position_value=gross,
        pnl_today=snapshot.pnl_today,
        orders_today=orders_today,
    )


def uses_last_price(limits: RiskLimits, request: OrderRequest) -> bool:
    """Whether a limit reads the last price for this order: the price band for a priced order, the value
    limits for an order without a limit price."""
    kind = request.order_type
    band = limits.price_band_percent is not None and (kind.needs_price or kind.needs_trigger)
    valued = limits.max_order_value is not None or limits.max_position_value_per_account is not None
    return band or (valued and not kind.needs_price)


class PreTradeRisk:
    """Checks orders, leg by leg, against each account's layered limits (Settings.risk_limits)."""

    def __init__(
        self,
        gateway: Gateway,
        limits: Mapping[str, RiskLimits],
        holds: Reservations,
        sessions: SessionCalendar,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._gw = gateway
        self._limits = limits
        self._holds = holds
        self._sessions = sessions
        self._clock = clock
        self._counted: dict[str, DayCount] = {}  # the latest count each account's submissions reported

    def uses_last_price(self, request: OrderRequest, accounts: Iterable[str]) -> bool:
        """Whether any of the accounts' limits needs a last price for this order (worth a quote when none is cached)."""
        return any(uses_last_price(self._limits[a], request) for a in accounts)

    def note(self, account: str, sent: Submission) -> None:
        """Take the order count a submission reports, which is newer than the snapshot's until the next one."""
        self._counted[account] = self._counted.get(account, NO_COUNT).latest(sent.orders_today)

    def check(
        self,
        request: OrderRequest,
        instrument: Instrument,
        last_price: Decimal | None,
        pieces: Sequence[tuple[str, int]],
    ) -> None:
        """Check each (account, quantity) piece of the order as if the pieces before it were sent.

        Raises the first RiskViolation, naming its account; nothing is held or sent, so a refusal refuses all.
        """
        now = self._clock()
        earlier: dict[str, list[Hold]] = {}
        for account, quantity in pieces:
            piece = replace(request, account=account, quantity=quantity)
            before = earlier.setdefault(account, [])
            violation = self._violation(piece, instrument, last_price, before, now)
            if violation is not None:
                raise violation.at(account)
            before.append(claim(piece, piece.price or last_price or instrument.last_price))

    def refusal(self, request: OrderRequest, instrument: Instrument, last_price: Decimal | None, account: str) -> str:
        """Why the account's limits refuse even one lot of the order, or "": routing leaves such accounts out."""
        piece = replace(request, account=account, quantity=instrument.lot_size)
        violation = self._violation(piece, instrument, last_price, [], self._clock())
        return violation.reason if violation else ""

    def _violation(
        self,
        piece: OrderRequest,
        instrument: Instrument,
        last_price: Decimal | None,
        earlier: Sequence[Hold],
        now: datetime,
    ) -> RiskViolation | None:
        account = piece.account
        snap = self._gw.snapshot(account)
        if snap.status is AccountStatus.RECONCILING:
            raise ServiceUnavailable(reconciling(account, snap.last_error))
        if snap.last_sync is None:
            if snap.status is AccountStatus.LOGIN_REQUIRED:
                return None  # it refuses every order until a login, and a login refreshes its snapshot at once
            why = f" ({snap.last_error})" if snap.last_error else ""
            raise ServiceUnavailable(
                f"account {account} has not synced with its broker yet{why}, so its risk limits cannot be checked;"
                " try again shortly"
            )
        unsynced = (*self._holds.unsynced(account, snap.funds_at), *earlier)
        in_flight = sum(1 for h in unsynced if h.settled_at is None)
        placed = snap.orders_today.latest(self._counted.get(account, NO_COUNT)).on(now.astimezone(IST).date())
        mark = snap.marks.get(piece.instrument, last_price)
        context = build_context(snap, piece.instrument, mark, unsynced, placed + in_flight)
        try:
            check_order(piece, instrument, context, self._limits[account], self._sessions, now)
        except RiskViolation as violation:
            return violation
        return None
