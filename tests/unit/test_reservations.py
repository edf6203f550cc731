"""Holds on funds and shares for orders routed since an account's last snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.domain import InstrumentId
from engine.routing.candidates import Reserved
from engine.routing.reservations import Hold, Reservations

D = Decimal
INFY = InstrumentId.parse("NSE:INFY")
TCS = InstrumentId.parse("NSE:TCS")
T0 = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_held_is_zero() -> None:
    assert Reservations().reserved("A", INFY, None) == Reserved(funds=D(0), shares=0)
    assert Reservations().reserved("A", INFY, at(0)) == Reserved(funds=D(0), shares=0)


def test_hold_returns_an_in_flight_hold() -> None:
    hold = Reservations().hold(Hold("A", INFY, D("1500.50"), 3))
    expected = Hold("A", INFY, D("1500.50"), 3, settled_at=None)
    assert [getattr(hold, f) for f in Hold.__slots__] == [getattr(expected, f) for f in Hold.__slots__]
    assert hold != expected, "holds compare by identity: two equal claims are still two claims"


def test_holds_add_up_funds_per_account_and_shares_per_instrument() -> None:
    r = Reservations()
    r.hold(Hold("A", INFY, D("1000.25"), 2))
    r.hold(Hold("A", INFY, D("500"), 5))
    r.hold(Hold("A", TCS, D("300"), 7))
    r.hold(Hold("B", INFY, D("9999"), 11))

    # Funds count every instrument of the account; shares only the asked-for instrument.
    assert r.reserved("A", INFY, None) == Reserved(funds=D("1800.25"), shares=7)
    assert r.reserved("A", TCS, None) == Reserved(funds=D("1800.25"), shares=7)
    assert r.reserved("B", INFY, None) == Reserved(funds=D("9999"), shares=11)
    assert r.reserved("B", TCS, None) == Reserved(funds=D("9999"), shares=0)
    assert r.reserved("C", INFY, None) == Reserved(funds=D(0), shares=0)


def test_settle_with_none_drops_the_hold_at_once() -> None:
    r = Reservations()
    kept = r.hold(Hold("A", INFY, D("100"), 1))
    dropped = r.hold(Hold("A", INFY, D("40"), 4))
    r.settle(dropped, None)
    assert r.reserved("A", INFY, None) == Reserved(funds=D("100"), shares=1)
    r.settle(kept, None)
    assert r.reserved("A", INFY, None) == Reserved(funds=D(0), shares=0)


def test_settle_with_a_time_marks_the_hold_but_keeps_it() -> None:
    r = Reservations()
    hold = r.hold(Hold("A", INFY, D("100"), 1))
    r.settle(hold, at(10))
    assert hold.settled_at == at(10)
    assert r.reserved("A", INFY, None) == Reserved(funds=D("100"), shares=1)


def test_settled_hold_stays_until_a_later_snapshot_then_disappears() -> None:
    r = Reservations()
    hold = r.hold(Hold("A", INFY, D("100"), 1))
    r.settle(hold, at(10))

    # Funds read before or exactly at the acknowledgement do not include the order yet.
    assert r.reserved("A", INFY, at(5)) == Reserved(funds=D("100"), shares=1)
    assert r.reserved("A", INFY, at(10)) == Reserved(funds=D("100"), shares=1)
    # Funds read after it do: the hold is forgotten...
    assert r.reserved("A", INFY, at(10.001)) == Reserved(funds=D(0), shares=0)
    # ...for good, even if an older snapshot is looked at afterwards.
    assert r.reserved("A", INFY, at(5)) == Reserved(funds=D(0), shares=0)
    assert r.reserved("A", INFY, None) == Reserved(funds=D(0), shares=0)


def test_in_flight_hold_never_disappears_on_a_snapshot() -> None:
    r = Reservations()
    r.hold(Hold("A", INFY, D("100"), 1))
    for seconds in (0, 60, 86_400, 10 * 86_400):
        assert r.reserved("A", INFY, at(seconds)) == Reserved(funds=D("100"), shares=1)


def test_snapshot_forgets_only_holds_settled_before_it() -> None:
    r = Reservations()
    early = r.hold(Hold("A", INFY, D("100"), 1))
    late = r.hold(Hold("A", INFY, D("20"), 2))
    r.hold(Hold("A", TCS, D("3"), 4))  # still in flight
    r.settle(early, at(1))
    r.settle(late, at(20))

    assert r.reserved("A", INFY, at(10)) == Reserved(funds=D("23"), shares=2)
    assert r.reserved("A", TCS, at(10)) == Reserved(funds=D("23"), shares=4)
    assert r.reserved("A", INFY, at(30)) == Reserved(funds=D("3"), shares=0)
    assert r.reserved("A", TCS, at(30)) == Reserved(funds=D("3"), shares=4)


def test_snapshot_of_one_account_leaves_other_accounts_holds() -> None:
    r = Reservations()
    a = r.hold(Hold("A", INFY, D("100"), 1))
    b = r.hold(Hold("B", INFY, D("200"), 2))
    r.settle(a, at(1))
    r.settle(b, at(1))

    assert r.reserved("A", INFY, at(5)) == Reserved(funds=D(0), shares=0)
    assert r.reserved("B", INFY, None) == Reserved(funds=D("200"), shares=2)
    assert r.reserved("B", INFY, at(5)) == Reserved(funds=D(0), shares=0)


def test_funds_at_none_keeps_even_long_settled_holds() -> None:
    r = Reservations()
    hold = r.hold(Hold("A", INFY, D("100"), 1))
    r.settle(hold, at(-3600))
    for _ in range(3):
        assert r.reserved("A", INFY, None) == Reserved(funds=D("100"), shares=1)
    assert r.reserved("A", INFY, at(0)) == Reserved(funds=D(0), shares=0)


def test_dropping_a_hold_twice_is_harmless() -> None:
    r = Reservations()
    hold = r.hold(Hold("A", INFY, D("100"), 1, quantity=1, price=D(100)))
    assert r.unsynced("A", None) == (hold,)
    r.settle(hold, None)
    r.settle(hold, None)  # e.g. a caller dropping every hold it never heard back about
    assert r.unsynced("A", None) == () and r.reserved("A", INFY, None) == Reserved(funds=D(0), shares=0)
