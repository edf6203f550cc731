"""The consolidated portfolio's numbers, checked against hand-computed FIFO results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from tests.integration.daemon import Daemon, wait_for
from tests.integration.test_orders import order_in, place
from trademaster.v1 import common_pb2, orders_pb2, portfolio_pb2

MASTER = InstrumentMaster.default()
S = orders_pb2.OrderStatus


def _instrument(key: str):
    found = MASTER.get(InstrumentId.parse(key))
    assert found is not None
    return found


def _filled(client, **fields) -> orders_pb2.Order:
    reply = place(client, account="gamma", **fields)
    return wait_for(lambda: order_in(client, reply.order.order_id, S.ORDER_STATUS_FILLED))


def test_portfolio_realised_unrealised_and_consolidation(daemon: Daemon) -> None:
    infy, sbin = _instrument("NSE:INFY"), _instrument("NSE:SBIN")
    infy_ask, infy_bid = infy.last_price + infy.tick_size, infy.last_price - infy.tick_size
    sbin_bid = sbin.last_price - sbin.tick_size
    with daemon.client() as client:
        _filled(client, instrument="NSE:INFY", quantity=10)
        _filled(client, instrument="NSE:INFY", quantity=4, side=common_pb2.SIDE_SELL)
        last = _filled(client, instrument="NSE:SBIN", quantity=5, side=common_pb2.SIDE_SELL)  # an intraday short
        place(client, account="alpha", instrument="NSE:INFY", quantity=3)  # alpha holds INFY MIS too

        def gamma_book() -> portfolio_pb2.AccountPortfolio | None:
            book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=["gamma"]), timeout=10)
            account = book.accounts[0]
            marked = len(account.positions) == 2 and all(p.last_price for p in account.positions)
            # Positions come from the ledger at once; funds from the account's next broker sync.
            synced = account.funds_as_of.ToDatetime() >= last.updated_at.ToDatetime()
            return account if marked and synced else None

        gamma = wait_for(gamma_book)
        whole = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(), timeout=10)

    positions = {(p.instrument, p.product): p for p in gamma.positions}
    infy_pos = positions[("NSE:INFY", common_pb2.PRODUCT_MIS)]
    assert infy_pos.quantity == 6
    assert Decimal(infy_pos.average_price) == infy_ask
    assert Decimal(infy_pos.realised_pnl) == (infy_bid - infy_ask) * 4
    assert Decimal(infy_pos.unrealised_pnl) == (infy.last_price - infy_ask) * 6
    sbin_pos = positions[("NSE:SBIN", common_pb2.PRODUCT_MIS)]
    assert sbin_pos.quantity == -5
    assert Decimal(sbin_pos.unrealised_pnl) == (sbin_bid - sbin.last_price) * 5
    assert Decimal(gamma.realised_pnl) == (infy_bid - infy_ask) * 4
    assert Decimal(gamma.funds.total) == Decimal("1000000") + (infy_bid - infy_ask) * 4

    per_account = [p for a in whole.accounts for p in a.positions]
    for row in whole.positions:
        parts = [p for p in per_account if (p.instrument, p.product) == (row.instrument, row.product)]
        assert row.quantity == sum(p.quantity for p in parts)
        assert Decimal(row.realised_pnl) == sum(Decimal(p.realised_pnl) for p in parts)
        assert sorted(row.accounts) == sorted(p.account for p in parts)
    assert Decimal(whole.totals.realised_pnl) == sum(Decimal(a.realised_pnl) for a in whole.accounts)
    assert Decimal(whole.totals.funds.total) == sum(Decimal(a.funds.total) for a in whole.accounts)
    assert [h.instrument for h in whole.holdings] == ["NSE:INFY"]  # alpha's seeded holding


def _curve(client, *accounts: str) -> dict[datetime, portfolio_pb2.PnlPoint]:
    request = portfolio_pb2.GetPnlHistoryRequest(accounts=accounts)
    request.since.FromDatetime(datetime.now(UTC) - timedelta(days=1))  # not today's: a run may span midnight IST
    return {p.at.ToDatetime(): p for p in client.portfolio.GetPnlHistory(request, timeout=10).points}


def test_pnl_history_is_the_sampled_book(daemon: Daemon) -> None:
    """Runs after the test above (file order), which fixes gamma's realised PnL; the daemon samples every second."""
    with daemon.client() as client:
        _filled(client, instrument="NSE:TCS", quantity=2)
        _filled(client, instrument="NSE:TCS", quantity=1, side=common_pb2.SIDE_SELL)

        def gamma_point() -> portfolio_pb2.PnlPoint | None:
            book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=["gamma"]), timeout=10)
            account = book.accounts[0]
            curve = client.portfolio.GetPnlHistory(portfolio_pb2.GetPnlHistoryRequest(accounts=["gamma"]), timeout=10)
            if not curve.points:
                return None
            last = curve.points[-1]
            same = (last.realised_pnl, last.unrealised_pnl) == (account.realised_pnl, account.unrealised_pnl)
            return last if same else None

        last = wait_for(gamma_point)
        assert Decimal(last.realised_pnl) != 0
        assert Decimal(last.total_pnl) == Decimal(last.realised_pnl) + Decimal(last.unrealised_pnl)

        whole = client.portfolio.GetPnlHistory(portfolio_pb2.GetPnlHistoryRequest(), timeout=10)
        instants = [p.at.ToDatetime() for p in whole.points]
        assert instants == sorted(set(instants)), "one point per instant, oldest first"
        at = last.at.ToDatetime()
        parts = [_curve(client, name)[at] for name in ("alpha", "beta", "gamma")]
        assert Decimal(_curve(client)[at].realised_pnl) == sum(Decimal(p.realised_pnl) for p in parts)
        assert Decimal(_curve(client)[at].unrealised_pnl) == sum(Decimal(p.unrealised_pnl) for p in parts)

        later = portfolio_pb2.GetPnlHistoryRequest(accounts=["gamma"])
        later.since.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
        assert not client.portfolio.GetPnlHistory(later, timeout=10).points
