"""Broker login sessions: what a completed login yields, and the protocol of adapters that need one.

Indian brokers end every API session at a fixed hour the next morning (SEBI wants sessions logged
out before the next trading day), so expiry is known at login time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from engine.domain.sessions import IST


@dataclass(frozen=True, slots=True)
class BrokerSession:
    access_token: str
    user_id: str
    expires_at: datetime


def next_expiry(at: datetime, expires: time) -> datetime:
    """The first `expires` (IST wall time) after `at`."""
    local = at.astimezone(IST)
    candidate = datetime.combine(local.date(), expires, IST)
    return candidate if candidate > local else candidate + timedelta(days=1)


def token_from_redirect(value: str, parameter: str) -> str:
    """The one-time token from a pasted redirect URL, or `value` itself if it is the bare token."""
    value = value.strip()
    if "://" not in value and "?" not in value:
        return value
    found = parse_qs(urlsplit(value).query).get(parameter)
    if not found or not found[0]:
        raise ValueError(f"the redirect URL has no {parameter} parameter")
    return found[0]


@runtime_checkable
class LoginFlow(Protocol):
    """An adapter whose broker needs a browser login before the API works."""

    def login_url(self) -> str:
        """Where the user logs in; the broker then redirects to the app's redirect URL with a token."""
        ...

    async def complete_login(self, redirect: str) -> BrokerSession:
        """Exchange the redirect URL (or the bare request token/code) for a session, and use it."""
        ...

    def use_session(self, session: BrokerSession | None) -> None:
        """Use a session saved earlier (None: log out locally)."""
        ...
