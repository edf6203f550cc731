"""One order to many accounts: how much each account gets, and what became of each account's leg.

Pure arithmetic, so the rounding a user relies on ("2 lots times 1.5 is 3 lots, 1 lot times 0.5 is
nothing") is tested without a daemon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from engine.domain import Order
from engine.domain.ids import short_code


class LegOutcome(StrEnum):
    PLACED = "PLACED"  # the account took the order (it may still be rejected later)
    DUPLICATE = "DUPLICATE"  # a retry: the leg was placed before and nothing was sent now
    FAILED = "FAILED"  # refused before or at the broker; `error` says why
    SKIPPED = "SKIPPED"  # nothing to send: quantity 0, or nothing to exit


@dataclass(frozen=True, slots=True)
class LegSize:
    """What one account of a batch is sent; `skipped` says why it is sent nothing (quantity 0)."""

    account: str
    quantity: int
    skipped: str = ""


@dataclass(frozen=True, slots=True)
class LegResult:
    """One account's part of a batch or an exit, reported whatever happened to it."""

    account: str
    quantity: int
    outcome: LegOutcome
    order: Order | None = None
    error: str = ""  # why FAILED or SKIPPED
    error_code: str = ""  # a FAILED leg's gRPC status name, e.g. FAILED_PRECONDITION


def batch_client_id(batch_id: str, account: str) -> str:
    """One account's leg of a batch: "<batch id>-<account code>" (engine.domain.ids.short_code), valid whatever
    characters the account id has, and the same on a retry of the batch so no leg is placed twice."""
    return f"{batch_id}-{short_code(account)}"


def scaled_quantity(base: int, multiplier: Decimal, lot_size: int) -> int:
    """`base × multiplier`, rounded down to whole lots: an account never gets more than its share."""
    lots = (Decimal(base) * multiplier / lot_size).to_integral_value(rounding=ROUND_FLOOR)
    return max(0, int(lots)) * lot_size


def scaled_sizes(
    accounts: Sequence[str], base: int, multipliers: Mapping[str, Decimal], lot_size: int
) -> list[LegSize]:
    """Each account's share of `base` by its multiplier; a share under one lot is skipped, saying so."""
    sizes = []
    for account in accounts:
        multiplier = multipliers[account]
        quantity = scaled_quantity(base, multiplier, lot_size)
        why = "" if quantity else f"{base} × multiplier {multiplier} is under one lot of {lot_size}"
        sizes.append(LegSize(account, quantity, why))
    return sizes


def explicit_sizes(accounts: Sequence[str], quantities: Mapping[str, int]) -> list[LegSize]:
    """The quantities as given, in `accounts` order; 0 skips the account."""
    return [LegSize(a, quantities[a], "" if quantities[a] else "quantity 0 given for this account") for a in accounts]
