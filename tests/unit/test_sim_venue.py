"""The broker-neutral simulator core: logins, sessions, limits, faults, order announcements."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from engine.brokers.base import PlaceRequest
from engine.brokers.pacing import KITE_LIMITS, RateLimits, cautious
from engine.brokers.session import next_expiry, token_from_redirect
from engine.domain import InstrumentId, OrderType, Product, Side
from engine.sim.clock import SimClock
from engine.sim.config import SimSettings, SimUserSettings
from engine.sim.faults import After, Before, FaultPlan, FaultRule
from engine.sim.records import SimOrder
from engine.sim.venue import SessionError, SimUser, SimVenue
from tests.unit.conftest import T0, FakeClock

INFY = InstrumentId.parse("NSE:INFY")


def venue(tmp_path: Path | None = None, clock: SimClock | None = None) -> SimVenue:
    settings = SimSettings(broker="kite", users=[SimUserSettings(user_id="AB0001", password="pw")])
    return SimVenue(
        settings, limits=KITE_LIMITS, token_expiry=time(6, 0), state_dir=tmp_path, clock=clock or SimClock(T0)
    )


def buy(tag: str = "t1") -> PlaceRequest:
    return PlaceRequest(tag, INFY, Side.BUY, 1, Product.MIS, OrderType.MARKET)


def test_login_code_is_single_use_and_checks_password_and_app() -> None:
    v = venue()
    with pytest.raises(SessionError, match="invalid user id or password"):
        v.issue_code("sim_api_key", "AB0001", "wrong")
    with pytest.raises(SessionError, match="unknown api_key"):
        v.issue_code("nope", "AB0001", "pw")
    code = v.issue_code("sim_api_key", "AB0001", "pw")
    session = v.redeem("sim_api_key", code)
    assert v.authenticate(session.access_token, "sim_api_key")[0].user_id == "AB0001"
    with pytest.raises(SessionError):
        v.redeem("sim_api_key", code)
    with pytest.raises(SessionError, match="invalid or revoked"):
        v.authenticate(session.access_token, "another_key")


def test_tokens_expire_at_the_brokers_hour_and_can_be_revoked() -> None:
    clock = SimClock(T0)  # Monday 09:30 IST
    v = venue(clock=clock)
    session = v.redeem("sim_api_key", v.issue_code("sim_api_key", "AB0001", "pw"))
    assert session.expires_at == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # Tuesday 06:00 IST
    assert v.session_apps("AB0001") == {"sim_api_key"}
    clock.set(datetime(2026, 11, 24, 0, 31, tzinfo=UTC))
    with pytest.raises(SessionError, match="expired"):
        v.authenticate(session.access_token)
    clock.set(T0)
    again = v.redeem("sim_api_key", v.issue_code("sim_api_key", "AB0001", "pw"))
    assert v.revoke("AB0001") == 2
    with pytest.raises(SessionError):
        v.authenticate(again.access_token)


def test_books_and_sessions_survive_a_restart(tmp_path: Path) -> None:
    v = venue(tmp_path)
    session = v.redeem("sim_api_key", v.issue_code("sim_api_key", "AB0001", "pw"))
    user, _ = v.authenticate(session.access_token)
    with v.trading(user) as exchange:
        order_id = exchange.place(buy())
    again = venue(tmp_path)
    user_again, _ = again.authenticate(session.access_token)
    assert user_again.exchange.order_record(order_id).filled_quantity == 1


def test_changes_are_announced_once_each() -> None:
    v = venue()
    seen: list[tuple[str, str, int]] = []

    def listener(user: SimUser, order: SimOrder) -> None:
        seen.append((user.user_id, order.status.value, order.filled_quantity))

    v.subscribe(listener)
    user = v.users["AB0001"]
    with v.trading(user) as exchange:
        exchange.place(buy())
    v.tick()
    assert seen == [("AB0001", "COMPLETE", 1)]


def test_rate_limits_count_admitted_requests_per_window() -> None:
    clock = FakeClock()
    limits = RateLimits({"order": ((3, 1),), "quote": ((1, 1),)}, clock)
    assert [limits.admit("u", "order") for _ in range(3)] == [None, None, None]
    assert limits.admit("u", "order") == pytest.approx(1.0)
    assert limits.admit("other-user", "order") is None
    clock.tick(0.5)
    assert limits.admit("u", "order") == pytest.approx(0.5)
    clock.tick(0.5)
    assert limits.admit("u", "order") is None
    assert limits.admit("u", "unlimited-category") is None


def test_client_pacing_stays_inside_the_brokers_windows() -> None:
    client = cautious(KITE_LIMITS)
    assert client["order"][0] == (8, 1.05) and client["quote"][0] == (1, 1.3)


def test_fault_plan_bursts_then_rates() -> None:
    plan = FaultPlan(seed=3)
    plan.set("place", FaultRule(burst_429=2, drop_rate=1.0, latency_ms=5))
    first, second, third = (plan.decide("place") for _ in range(3))
    assert first.before is Before.LIMIT and second.before is Before.LIMIT and third.before is None
    assert third.after is After.DROP and third.latency_seconds == 0.005
    assert plan.decide("orders").before is None  # other endpoints untouched
    plan.set("*", FaultRule(error_rate=1.0))
    assert plan.decide("orders").before is Before.ERROR
    plan.clear()
    assert plan.decide("place").after is None


def test_session_helpers() -> None:
    at = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 06:30 IST
    assert next_expiry(at, time(6, 0)) == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
    assert next_expiry(at - timedelta(hours=1), time(6, 0)) == datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    url = "http://127.0.0.1:8765/callback?request_token=abc123&action=login&status=success"
    assert token_from_redirect(url, "request_token") == "abc123"
    assert token_from_redirect("  abc123 ", "request_token") == "abc123"
    with pytest.raises(ValueError, match="no code parameter"):
        token_from_redirect("http://x/cb?state=1", "code")


def test_sim_clock_shifts_and_resets() -> None:
    clock = SimClock()
    clock.set(datetime(2026, 11, 23, 4, 30))  # naive is UTC
    assert abs(clock() - datetime(2026, 11, 23, 4, 30, tzinfo=UTC)) < timedelta(seconds=1)
    clock.reset()
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)
