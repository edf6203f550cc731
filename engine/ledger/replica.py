"""Another process's copy of the ledger's books, kept current by asking only for what changed.

A portfolio of 100 accounts holds some 20,000 positions; pickling all of them across the Ray boundary on every
GetPortfolio cost more than building the portfolio itself. The gateway keeps this copy instead and asks the
LedgerActor for the books changed since the version it holds (Ledger.changes).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.ledger.book import Slot, slot_of
from engine.ledger.fifo import PositionState


class LedgerReplica:
    """The books as of `version` of the ledger `epoch`; `epoch` changes when the ledger is rebuilt from nothing
    (its actor restarted), and its versions then start again."""

    def __init__(self) -> None:
        self.epoch = ""
        self.version = 0
        self._books: dict[str, dict[Slot, PositionState]] = {}  # by account, then as the ledger files them
        self._unsorted: set[str] = set()  # accounts given a new book since their books were last sorted

    def update(self, epoch: str, version: int, changed: Iterable[PositionState]) -> list[PositionState]:
        """Take the ledger's answer to a request for changes after (`self.epoch`, `self.version`): every book, if
        `epoch` is another. Answers may come back out of order when calls overlap: one no newer than the copy is
        dropped, as the copy already holds everything it says. Returns the books taken, for a reader that keeps
        something built from them (engine.portfolio.Portfolio)."""
        if epoch == self.epoch and version <= self.version:
            return []
        if epoch != self.epoch:
            self._books.clear()
            self._unsorted.clear()
        taken = list(changed)
        for state in taken:
            books = self._books.setdefault(state.account, {})
            slot = slot_of(state.account, state.instrument, state.product)
            if slot not in books:
                self._unsorted.add(state.account)
            books[slot] = state
        self.epoch, self.version = epoch, version
        return taken

    def positions(self, accounts: Iterable[str]) -> list[PositionState]:
        """The accounts' books, account by account, each account's in the ledger's order (instrument, product)."""
        found: list[PositionState] = []
        for account in accounts:
            books = self._books.get(account)
            if not books:
                continue
            if account in self._unsorted:
                books = self._books[account] = dict(sorted(books.items()))
                self._unsorted.discard(account)
            found.extend(books.values())
        return found
