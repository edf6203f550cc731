"""Split an order no single account can take across the fewest accounts, then slice legs at the freeze limit.

The number of legs is the least possible: the fewest largest capacities that cover the quantity.
Within that count, accounts are taken best score first, as long as the rest can still be covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Option:
    """An eligible account for splitting: what it can take and how good it is."""

    account: str
    capacity: int
    score: float


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    quantity: int


def fewest_legs(quantity: int, capacities: Sequence[int]) -> int | None:
    """The least number of accounts whose capacities reach `quantity`, or None when all of them do not."""
    covered = 0
    for count, cap in enumerate(sorted(capacities, reverse=True), start=1):
        covered += cap
        if covered >= quantity:
            return count
    return None


def split(quantity: int, options: Sequence[Option]) -> list[Leg] | None:
    """Legs covering `quantity` exactly, or None when the options together cannot.

    Capacities and `quantity` are multiples of one lot, so the legs are too. Deterministic: ties in
    score go to the account id.
    """
    pool = sorted((o for o in options if o.capacity > 0), key=lambda o: (-o.score, o.account))
    count = fewest_legs(quantity, [o.capacity for o in pool])
    if count is None:
        return None
    legs: list[Leg] = []
    need = quantity
    for slots_left in range(count - 1, -1, -1):
        for index, option in enumerate(pool):
            take = min(option.capacity, need)
            rest = sorted((o.capacity for o in pool[:index] + pool[index + 1 :]), reverse=True)
            if need - take <= sum(rest[:slots_left]):
                legs.append(Leg(option.account, take))
                need -= take
                pool.pop(index)
                break
        if need == 0:
            break
    return legs


def slices(quantity: int, freeze_quantity: int, lot_size: int) -> list[int]:
    """One leg cut into exchange-acceptable orders: each at most the freeze quantity, in whole lots."""
    if freeze_quantity <= 0 or quantity <= freeze_quantity:
        return [quantity]
    most = max(lot_size, freeze_quantity // lot_size * lot_size)
    full, rest = divmod(quantity, most)
    return [most] * full + ([rest] if rest else [])
