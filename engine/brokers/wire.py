"""How Indian brokers' JSON spells numbers and times, read the same way by every adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.brokers.session import IST


def decimal(value: Any) -> Decimal:
    """A JSON number (or numeric string) as an exact Decimal; null and missing are 0."""
    return Decimal(str(value or 0))


def optional_decimal(value: Any) -> Decimal | None:
    """Brokers send 0 or null for "no price"; both are None here."""
    return Decimal(str(value)) if value else None


def ist_time(value: str | None) -> datetime:
    """"YYYY-MM-DD HH:MM:SS" in IST, as Kite and Upstox send timestamps; missing means now."""
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=IST)
