"""The portfolio's API message, kept between reads and redrawn only where the portfolio changed.

A portfolio message is kept per PortfolioView (PortfolioMessages) and each read redraws only the rows whose domain
objects changed: a view hands out the same object for a row that did not. Rows are filled field by field, in place
or in a row just added to its repeated field (a message handed to a constructor is copied), by the same functions.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from engine.api.convert import dec, money, product_to_proto
from engine.brokers.base import Funds
from engine.ledger import ConsolidatedPosition, MarkedPosition
from engine.portfolio import AccountBook, HoldingView, PortfolioView
from trademaster.v1 import portfolio_pb2

_AVERAGE = Decimal("0.0001")  # a consolidated average price's places
Row = TypeVar("Row")
Drawn = TypeVar("Drawn", portfolio_pb2.Position, portfolio_pb2.Holding, portfolio_pb2.AccountPortfolio)


def _fill_marked(into: portfolio_pb2.Position, p: MarkedPosition, was: MarkedPosition | None) -> None:
    if was is None or p.state is not was.state:  # else only marked again
        s = p.state
        into.account = s.account
        into.instrument = str(s.instrument)
        into.product = product_to_proto(s.product)
        into.quantity = s.quantity
        into.average_price = dec(s.average_price)
        into.realised_pnl = money(s.realised_pnl)
    into.last_price = dec(p.last_price)
    into.unrealised_pnl = money(p.unrealised_pnl)


def _fill_consolidated(into: portfolio_pb2.Position, p: ConsolidatedPosition, was: ConsolidatedPosition | None) -> None:
    into.instrument = str(p.instrument)
    into.product = product_to_proto(p.product)
    into.quantity = p.quantity
    into.average_price = dec(p.average_price.quantize(_AVERAGE) if p.average_price is not None else None)
    into.last_price = dec(p.last_price)
    into.realised_pnl = money(p.realised_pnl)
    into.unrealised_pnl = money(p.unrealised_pnl)
    if was is None or p.accounts is not was.accounts:  # the same tuple while no account joins
        del into.accounts[:]
        into.accounts.extend(p.accounts)


def _fill_holding(into: portfolio_pb2.Holding, h: HoldingView, _was: HoldingView | None) -> None:
    into.account = h.account
    into.instrument = str(h.instrument)
    into.quantity = h.quantity
    into.average_price = money(h.average_price)
    into.last_price = dec(h.last_price)
    into.unrealised_pnl = money(h.unrealised_pnl)


def _fill_funds(into: portfolio_pb2.Funds, funds: Funds) -> None:
    into.available, into.used_margin, into.total = money(funds.available), money(funds.used_margin), money(funds.total)


class PortfolioMessage:
    """One PortfolioView's message, kept between reads and redrawn where the view changed.

    It is handed to gRPC as it is (`lend`): a copy of 20,000 rows costs as much as serializing them. gRPC serializes
    it once the handler returns, but an interceptor may await something first, and a read in the meantime would
    change it under the serializer; so a lent message is not changed until it is given back (`returned`, when its
    call is done), and a read before that goes on with a copy, leaving the lent one to its reader.

    A field set again does not free the bytes it held (they stay in the message's arena until the message goes),
    so once as many rows were filled again as the message holds, it is copied, which keeps only what is live.
    """

    def __init__(self) -> None:
        self._message = portfolio_pb2.Portfolio()
        self._lent = False
        self._drawn = PortfolioView()  # as drawn: a view's lists are never changed once handed out
        self._filled = 0  # rows filled again since the message was made

    def draw(self, view: PortfolioView) -> portfolio_pb2.Portfolio:
        """The message brought up to date with `view`, without as_of; this object's, not to be handed out."""
        rows = len(view.positions) + len(view.holdings) + sum(len(b.positions) + len(b.holdings) for b in view.accounts)
        if self._lent or self._filled > rows:  # the lent one is left to its reader as it is
            kept, self._message = self._message, portfolio_pb2.Portfolio()
            self._message.CopyFrom(kept)
            self._lent, self._filled = False, 0
        message, drawn = self._message, self._drawn
        message.ClearField("as_of")
        self._filled += 1  # the totals and as_of, set again on every read
        realised, unrealised = view.realised_pnl, view.unrealised_pnl
        totals = message.totals
        totals.realised_pnl, totals.unrealised_pnl = money(realised), money(unrealised)
        totals.total_pnl, totals.holdings_value = money(realised + unrealised), money(view.holdings_value)
        _fill_funds(totals.funds, view.funds)
        self._redraw(message.positions, view.positions, drawn.positions, _fill_consolidated)
        self._redraw(message.holdings, view.holdings, drawn.holdings, _fill_holding)
        self._redraw(message.accounts, view.accounts, drawn.accounts, self._fill_account)
        drawn.positions, drawn.holdings, drawn.accounts = view.positions, view.holdings, view.accounts
        return message

    def lend(self, as_of: datetime) -> portfolio_pb2.Portfolio:
        """The message as last drawn, stamped `as_of`, to hand to gRPC; call `returned` once it is serialized."""
        self._message.as_of.FromDatetime(as_of)
        self._lent = True
        return self._message

    def returned(self, message: portfolio_pb2.Portfolio) -> None:
        if message is self._message:
            self._lent = False

    def _redraw(
        self,
        into: RepeatedCompositeFieldContainer[Drawn],
        rows: Sequence[Row],
        drawn: Sequence[Row],
        fill: Callable[[Drawn, Row, Row | None], None],
    ) -> None:
        """Bring `into`, drawn from `drawn`, to `rows`: each row that is not the object drawn is filled again; a
        list of another length (rows added) is drawn whole."""
        if len(rows) != len(drawn):
            del into[:]
            for row in rows:
                fill(into.add(), row, None)
            self._filled += len(drawn)  # the rows let go
            return
        for place, (row, was) in enumerate(zip(rows, drawn, strict=True)):
            if row is not was:
                fill(into[place], row, was)
                self._filled += 1

    def _fill_account(self, into: portfolio_pb2.AccountPortfolio, book: AccountBook, was: AccountBook | None) -> None:
        into.account = book.account
        into.broker = book.broker
        into.realised_pnl = money(book.realised_pnl)
        into.unrealised_pnl = money(book.unrealised_pnl)
        if was is None or book.funds_as_of is not was.funds_as_of:
            if book.funds_as_of is None:
                into.ClearField("funds_as_of")
            else:
                into.funds_as_of.FromDatetime(book.funds_as_of)
        if was is None or book.funds is not was.funds:
            if book.funds is None:
                into.ClearField("funds")
            else:
                _fill_funds(into.funds, book.funds)
        if was is not None and book.after == was.version:
            for place in book.changed:
                _fill_marked(into.positions[place], book.positions[place], was.positions[place])
            self._filled += len(book.changed)
        else:
            self._redraw(into.positions, book.positions, was.positions if was else [], _fill_marked)
        self._redraw(into.holdings, book.holdings, was.holdings if was else [], _fill_holding)


class PortfolioMessages:
    """The message of each PortfolioView, kept as long as the view is (the Gateway keeps a few)."""

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[PortfolioView, PortfolioMessage] = weakref.WeakKeyDictionary()

    def of(self, view: PortfolioView) -> PortfolioMessage:
        kept = self._kept.get(view)
        if kept is None:
            kept = self._kept[view] = PortfolioMessage()
        return kept
