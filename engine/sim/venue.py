"""One simulated broker, whatever its wire protocol: users' books over one market, logins, sessions, limits.

A wire front (Kite, Upstox) turns HTTP into calls on this class and back. Each user's book is a
persisted SimExchange, so a simulator restart keeps the day's orders, trades and funds, and sessions
are saved too, so a client's access token survives it, as it would a broker's restart.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from engine.brokers.pacing import RateLimits, Window
from engine.brokers.paper import PaperBroker
from engine.brokers.session import next_expiry
from engine.domain.sessions import TradingSessions
from engine.files import write_atomically
from engine.instrument_master import InstrumentMaster
from engine.sim.clock import SimClock
from engine.sim.config import SimAppSettings, SimSettings, SimUserSettings
from engine.sim.exchange import SimExchange
from engine.sim.faults import FaultPlan
from engine.sim.prices import PricePath
from engine.sim.records import SimOrder

LOGIN_CODE_TTL = timedelta(minutes=5)


class SessionError(Exception):
    """The request's credentials are missing, wrong, expired or revoked."""


@dataclass(frozen=True, slots=True)
class SimSession:
    access_token: str
    user_id: str
    api_key: str
    public_token: str
    refresh_token: str
    login_time: datetime
    expires_at: datetime


@dataclass(slots=True)
class SimUser:
    settings: SimUserSettings
    book: PaperBroker

    @property
    def user_id(self) -> str:
        return self.settings.user_id

    @property
    def exchange(self) -> SimExchange:
        return self.book.exchange


OrderListener = Callable[[SimUser, SimOrder], None]


def _order_signature(order: SimOrder) -> tuple[object, ...]:
    return (order.status, order.filled_quantity, order.quantity, order.price, order.trigger_price, len(order.history))


class SimVenue:
    def __init__(
        self,
        settings: SimSettings,
        *,
        limits: Mapping[str, Sequence[Window]],
        token_expiry: time,
        state_dir: Path | None = None,
        clock: SimClock | None = None,
        instruments: InstrumentMaster | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SimClock(settings.clock_start)
        self.instruments = instruments or InstrumentMaster.default()
        market = settings.market
        self.prices = PricePath(market.seed, market.volatility)
        self.faults = FaultPlan(settings.fault_seed)
        self.limits = RateLimits(limits, self.clock)
        self.rate_limited: Counter[tuple[str, str]] = Counter()  # 429s answered per (user, category)
        self.token_expiry = token_expiry
        self.apps: dict[str, SimAppSettings] = {a.api_key: a for a in settings.apps}
        self._state_dir = state_dir
        sessions = TradingSessions() if market.enforce_sessions else None
        self.users: dict[str, SimUser] = {}
        for user in settings.users:
            book = PaperBroker.open(
                user.user_id,
                self.instruments,
                self.prices,
                state_path=state_dir / "books" / f"{user.user_id}.json" if state_dir else None,
                opening_cash=user.opening_cash,
                holdings=user.holding_map(),
                half_spread_ticks=market.half_spread_ticks,
                depth_per_second=market.depth_per_second,
                price_band_percent=market.price_band_percent,
                sessions=sessions,
                clock=self.clock,
            )
            self.users[user.user_id] = SimUser(user, book)
        self._codes: dict[str, tuple[str, str, datetime]] = {}  # code -> (api_key, user_id, issued)
        self._sessions: dict[str, SimSession] = self._load_sessions()
        self._listeners: list[OrderListener] = []
        self._seen: dict[tuple[str, str], tuple[object, ...]] = {
            (u.user_id, o.order_id): _order_signature(o)
            for u in self.users.values()
            for o in u.exchange.order_records()
        }

    # ---- login and sessions ---------------------------------------------------------------------

    def app(self, api_key: str) -> SimAppSettings:
        app = self.apps.get(api_key)
        if app is None:
            raise SessionError(f"unknown api_key {api_key!r}")
        return app

    def issue_code(self, api_key: str, user_id: str, password: str) -> str:
        """What the broker's login page does: check the user's password and hand out a one-time code."""
        self.app(api_key)
        user = self.users.get(user_id)
        if user is None or not secrets.compare_digest(user.settings.password, password):
            raise SessionError("invalid user id or password")
        code = secrets.token_urlsafe(24)
        self._codes[code] = (api_key, user_id, self.clock())
        return code

    def redeem(self, api_key: str, code: str) -> SimSession:
        """Exchange a one-time code for a session; the caller has checked the app's secret."""
        entry = self._codes.pop(code, None)
        if entry is None or entry[0] != api_key or self.clock() - entry[2] > LOGIN_CODE_TTL:
            raise SessionError("the request token or code is invalid or has expired")
        now = self.clock()
        session = SimSession(
            access_token=secrets.token_urlsafe(24),
            user_id=entry[1],
            api_key=api_key,
            public_token=secrets.token_hex(16),
            refresh_token=secrets.token_urlsafe(24),
            login_time=now,
            expires_at=next_expiry(now, self.token_expiry),
        )
        self._sessions[session.access_token] = session
        self._save_sessions()
        return session

    def authenticate(self, access_token: str, api_key: str | None = None) -> tuple[SimUser, SimSession]:
        session = self._sessions.get(access_token)
        if session is None or (api_key is not None and session.api_key != api_key):
            raise SessionError("invalid or revoked access token")
        if self.clock() >= session.expires_at:
            raise SessionError("the access token has expired; log in again")
        return self.users[session.user_id], session

    def session_apps(self, user_id: str) -> set[str]:
        """The api_keys `user_id` has a live session with: where the user's order updates go."""
        now = self.clock()
        return {s.api_key for s in self._sessions.values() if s.user_id == user_id and s.expires_at > now}

    def logout(self, access_token: str) -> bool:
        found = self._sessions.pop(access_token, None) is not None
        self._save_sessions()
        return found

    def revoke(self, user_id: str | None = None) -> int:
        """Invalidate every session of `user_id` (all users when None); returns how many ended."""
        doomed = [t for t, s in self._sessions.items() if user_id is None or s.user_id == user_id]
        for token in doomed:
            del self._sessions[token]
        self._save_sessions()
        return len(doomed)

    # ---- trading ---------------------------------------------------------------------------------

    @contextmanager
    def trading(self, user: SimUser) -> Iterator[SimExchange]:
        """The user's exchange for one request; persists and announces whatever the request changed."""
        try:
            yield user.exchange
        finally:
            self._settle(user)

    def subscribe(self, listener: OrderListener) -> None:
        """Call `listener` for every order that changes from now on (postbacks, websocket updates)."""
        self._listeners.append(listener)

    def _announce(self, user: SimUser) -> None:
        for order in user.exchange.order_records():
            key = (user.user_id, order.order_id)
            signature = _order_signature(order)
            if self._seen.get(key) != signature:
                self._seen[key] = signature
                for listener in self._listeners:
                    listener(user, order)

    def tick(self) -> None:
        """Let time pass for every book: fills happen and are announced even when nobody asks."""
        for user in self.users.values():
            self._settle(user)

    def _settle(self, user: SimUser) -> None:
        self._announce(user)
        user.book.save_if_changed()

    # ---- persistence -----------------------------------------------------------------------------

    def _sessions_path(self) -> Path | None:
        return self._state_dir / "sessions.json" if self._state_dir else None

    def _load_sessions(self) -> dict[str, SimSession]:
        path = self._sessions_path()
        if path is None or not path.exists():
            return {}
        sessions = {}
        for raw in json.loads(path.read_text(encoding="utf-8")):
            raw["login_time"] = datetime.fromisoformat(raw["login_time"])
            raw["expires_at"] = datetime.fromisoformat(raw["expires_at"])
            session = SimSession(**raw)
            if session.user_id in self.users:
                sessions[session.access_token] = session
        return sessions

    def _save_sessions(self) -> None:
        path = self._sessions_path()
        if path is None:
            return
        rows = [
            {**asdict(s), "login_time": s.login_time.isoformat(), "expires_at": s.expires_at.isoformat()}
            for s in self._sessions.values()
        ]
        write_atomically(path, json.dumps(rows))
