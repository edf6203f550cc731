"""One book across accounts: ledger positions marked to market, plus broker holdings and funds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.brokers.base import Funds, Holding, Quote
from engine.domain import InstrumentId
from engine.domain.accounts import AccountSnapshot
from engine.ledger import ConsolidatedPosition, MarkedPosition, PositionState, consolidate, mark

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class HoldingView:
    account: str  # empty on consolidated rows
    instrument: InstrumentId
    quantity: int
    average_price: Decimal
    last_price: Decimal

    @property
    def unrealised_pnl(self) -> Decimal:
        return (self.last_price - self.average_price) * self.quantity

    @property
    def value(self) -> Decimal:
        return self.last_price * self.quantity


@dataclass(frozen=True, slots=True)
class AccountBook:
    """One account's part of the portfolio; its PnL totals are summed once, by `account_book`."""

    account: str
    broker: str
    positions: list[MarkedPosition]
    holdings: list[HoldingView]
    funds: Funds | None
    funds_as_of: datetime | None
    realised_pnl: Decimal
    unrealised_pnl: Decimal  # of positions and holdings


def account_book(snap: AccountSnapshot, positions: list[MarkedPosition], holdings: list[HoldingView]) -> AccountBook:
    return AccountBook(
        account=snap.account,
        broker=snap.broker,
        positions=positions,
        holdings=holdings,
        funds=snap.funds,
        funds_as_of=snap.last_sync,
        realised_pnl=sum((p.state.realised_pnl for p in positions), _ZERO),
        unrealised_pnl=sum((p.unrealised_pnl for p in positions), _ZERO)
        + sum((h.unrealised_pnl for h in holdings), _ZERO),
    )


@dataclass(frozen=True, slots=True)
class PortfolioView:
    accounts: list[AccountBook]
    positions: list[ConsolidatedPosition]
    holdings: list[HoldingView]
    funds: Funds

    @property
    def realised_pnl(self) -> Decimal:
        return sum((a.realised_pnl for a in self.accounts), _ZERO)

    @property
    def unrealised_pnl(self) -> Decimal:
        return sum((a.unrealised_pnl for a in self.accounts), _ZERO)

    @property
    def holdings_value(self) -> Decimal:
        return sum((h.value for h in self.holdings), _ZERO)


def _holding_view(account: str, holding: Holding) -> HoldingView:
    return HoldingView(account, holding.instrument, holding.quantity, holding.average_price, holding.last_price)


def _consolidate_holdings(rows: Sequence[HoldingView]) -> list[HoldingView]:
    grouped: dict[InstrumentId, list[HoldingView]] = {}
    for row in rows:
        grouped.setdefault(row.instrument, []).append(row)
    result = []
    for instrument in sorted(grouped):
        group = grouped[instrument]
        quantity = sum(h.quantity for h in group)
        cost = sum((h.average_price * h.quantity for h in group), _ZERO)
        average = cost / quantity if quantity else _ZERO
        result.append(HoldingView("", instrument, quantity, average, group[0].last_price))
    return result


def _marks(snap: AccountSnapshot, quotes: Mapping[InstrumentId, Quote]) -> Mapping[InstrumentId, Decimal]:
    """The account's marks, each replaced by the market-data quote when that arrived after the account's sync."""
    newer = {i: q.last_price for i, q in quotes.items() if snap.last_sync is None or q.at > snap.last_sync}
    return {**snap.marks, **newer} if newer else snap.marks


def build_portfolio(
    states: Sequence[PositionState], snapshots: Sequence[AccountSnapshot], quotes: Mapping[InstrumentId, Quote]
) -> PortfolioView:
    """Mark each account's positions with its own broker's prices, or a newer quote from market data, then
    consolidate across accounts."""
    by_account: dict[str, list[PositionState]] = {}
    for state in states:
        by_account.setdefault(state.account, []).append(state)
    books = []
    for snap in snapshots:
        own = by_account.get(snap.account, [])
        holdings = [_holding_view(snap.account, h) for h in snap.holdings]
        books.append(account_book(snap, mark(own, _marks(snap, quotes)), holdings))
    present = [b.funds for b in books if b.funds is not None]
    funds = Funds(
        available=sum((f.available for f in present), _ZERO),
        used_margin=sum((f.used_margin for f in present), _ZERO),
        total=sum((f.total for f in present), _ZERO),
    )
    return PortfolioView(
        accounts=books,
        positions=consolidate(p for b in books for p in b.positions),
        holdings=_consolidate_holdings([h for b in books for h in b.holdings]),
        funds=funds,
    )


@dataclass(frozen=True, slots=True)
class PnlPoint:
    """The summed PnL of some accounts at one sampling instant: a point of the intraday PnL curve."""

    at: datetime
    realised: Decimal
    unrealised: Decimal

    @property
    def total(self) -> Decimal:
        return self.realised + self.unrealised
