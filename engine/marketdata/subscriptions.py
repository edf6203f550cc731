"""Who follows which instruments: an instrument is polled while at least one owner follows it."""

from __future__ import annotations

from collections.abc import Iterable

from engine.domain import InstrumentId


class Subscriptions:
    """Owners are names such as `portfolio`, `stream:7` or `strategy:<id>`; each replaces its own set."""

    def __init__(self) -> None:
        self._by_owner: dict[str, frozenset[InstrumentId]] = {}

    def set(self, owner: str, instruments: Iterable[InstrumentId]) -> bool:
        """Make `owner` follow exactly `instruments` (none: unsubscribe); return whether anything changed."""
        wanted = frozenset(instruments)
        if self._by_owner.get(owner, frozenset()) == wanted:
            return False
        if wanted:
            self._by_owner[owner] = wanted
        else:
            self._by_owner.pop(owner, None)
        return True

    def remove(self, owner: str) -> bool:
        return self.set(owner, ())

    def of(self, owner: str) -> frozenset[InstrumentId]:
        return self._by_owner.get(owner, frozenset())

    def owners(self) -> dict[str, frozenset[InstrumentId]]:
        return dict(self._by_owner)

    def instruments(self) -> set[InstrumentId]:
        """Every followed instrument, once however many owners follow it."""
        return set().union(*self._by_owner.values()) if self._by_owner else set()

    def followers(self, instrument: InstrumentId) -> list[str]:
        return sorted(owner for owner, items in self._by_owner.items() if instrument in items)
