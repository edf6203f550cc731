"""PortfolioService: the consolidated book, on request or as a throttled stream of changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time

import grpc

from engine.api import convert, validation
from engine.api.auth import caller
from engine.api.gateway import Gateway
from engine.api.portfolio_message import PortfolioMessage, PortfolioMessages
from engine.domain.sessions import IST
from engine.errors import InvalidArgument
from engine.store.pnl_samples import PnlSampleStore
from trademaster.v1 import portfolio_pb2, portfolio_pb2_grpc

_MIN_INTERVAL_MS = 100


def _accounts(gateway: Gateway, names: list[str]) -> list[str]:
    for name in names:
        validation.text("accounts", name, required=True)
        gateway.require_account(name, caller())
    return names


class PortfolioService(portfolio_pb2_grpc.PortfolioServiceServicer):
    def __init__(self, gateway: Gateway, pnl_samples: PnlSampleStore) -> None:
        self._gw = gateway
        self._pnl = pnl_samples
        self._messages = PortfolioMessages()

    async def _drawn(self, accounts: list[str]) -> tuple[PortfolioMessage, portfolio_pb2.Portfolio]:
        """The accounts' portfolio message, kept, and as brought up to date (without as_of)."""
        view = await self._gw.portfolio(accounts, caller())
        kept = self._messages.of(view)
        return kept, kept.draw(view)

    async def GetPortfolio(
        self, request: portfolio_pb2.GetPortfolioRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.Portfolio:
        kept, _ = await self._drawn(_accounts(self._gw, list(request.accounts)))
        message = kept.lend(datetime.now(UTC))
        context.add_done_callback(lambda _: kept.returned(message))
        return message

    async def StreamPortfolio(
        self, request: portfolio_pb2.StreamPortfolioRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[portfolio_pb2.Portfolio]:
        accounts = _accounts(self._gw, list(request.accounts))
        interval_ms = request.min_interval_ms or 1000
        if interval_ms < _MIN_INTERVAL_MS:
            raise InvalidArgument("min_interval_ms", f"must be at least {_MIN_INTERVAL_MS}")
        previous = b""
        while True:
            kept, drawn = await self._drawn(accounts)
            body = drawn.SerializeToString(deterministic=True)
            if body != previous:  # drawn without as_of: only as_of moving is not a change
                previous = body
                message = kept.lend(datetime.now(UTC))
                try:
                    yield message  # gRPC serializes it before this generator runs again
                finally:
                    kept.returned(message)
            await asyncio.sleep(interval_ms / 1000)

    async def GetPnlHistory(
        self, request: portfolio_pb2.GetPnlHistoryRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.PnlHistory:
        principal = caller()
        accounts = _accounts(self._gw, list(request.accounts)) or principal.visible(self._gw.accounts)
        if request.HasField("since"):
            since = request.since.ToDatetime(tzinfo=UTC)
        else:
            since = datetime.combine(datetime.now(IST).date(), time.min, tzinfo=IST)
        return convert.pnl_history_to_proto(await self._pnl.curve(accounts, since))
