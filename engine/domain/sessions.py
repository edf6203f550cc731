"""Trading sessions: whether an exchange accepts regular orders at an instant, holidays included.

Trading days come from exchange-calendars' XBOM calendar, whose holidays NSE shares. The calendar
only reaches a year or so ahead; past its end, weekdays count as trading days rather than refusing
every order. The calendar is loaded on first use because it pulls in pandas.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from engine.domain.types import Exchange

__all__ = ["IST", "SESSION_HOURS", "TradingSessions"]

IST = ZoneInfo("Asia/Kolkata")

# Normal-market hours per segment, IST.
SESSION_HOURS: dict[Exchange, tuple[time, time]] = {
    Exchange.NSE: (time(9, 15), time(15, 30)),
    Exchange.BSE: (time(9, 15), time(15, 30)),
    Exchange.NFO: (time(9, 15), time(15, 30)),
    Exchange.BFO: (time(9, 15), time(15, 30)),
    Exchange.CDS: (time(9, 0), time(17, 0)),
    Exchange.BCD: (time(9, 0), time(17, 0)),
    Exchange.MCX: (time(9, 0), time(23, 30)),
}


class TradingSessions:
    def __init__(self, calendar_name: str = "XBOM") -> None:
        self.calendar_name = calendar_name

    @cached_property
    def _calendar(self) -> Any:
        import exchange_calendars

        return exchange_calendars.get_calendar(self.calendar_name)

    def is_trading_day(self, day: date) -> bool:
        calendar = self._calendar
        if calendar.first_session.date() <= day <= calendar.last_session.date():
            return bool(calendar.is_session(day.isoformat()))
        return day.weekday() < 5

    def closed_reason(self, exchange: Exchange, at: datetime) -> str | None:
        """Why `exchange` takes no regular orders at `at`, or None while it is in session."""
        local = at.astimezone(IST)
        if not self.is_trading_day(local.date()):
            return f"{exchange} is closed on {local.date().isoformat()} (not a trading day)"
        opens, closes = SESSION_HOURS[exchange]
        if not opens <= local.time() < closes:
            return (
                f"{exchange} is closed at {local.strftime('%H:%M')} IST; "
                f"the session runs {opens.strftime('%H:%M')}-{closes.strftime('%H:%M')} IST"
            )
        return None
