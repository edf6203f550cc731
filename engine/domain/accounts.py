"""What the daemon knows about one account between syncs with its broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from engine.brokers.base import Funds, Holding
from engine.domain.instruments import InstrumentId


class AccountStatus(StrEnum):
    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    DEGRADED = "DEGRADED"


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account: str
    broker: str
    status: AccountStatus
    last_sync: datetime | None = None
    last_error: str = ""
    consecutive_errors: int = 0
    ack_latency_ms: float = 0.0
    open_orders: int = 0
    funds: Funds | None = None
    holdings: tuple[Holding, ...] = ()
    marks: dict[InstrumentId, Decimal] = field(default_factory=dict)
    login_url: str = ""  # where to log in, while LOGIN_REQUIRED
