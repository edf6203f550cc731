"""MarketDataService: quotes from the QuoteBook, on request or as a stream of changes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc

from engine.api import convert, validation
from engine.api.gateway import Gateway
from engine.api.quotes import QuoteBook
from engine.brokers.base import Quote
from engine.domain import InstrumentId
from engine.errors import InvalidArgument
from trademaster.v1 import marketdata_pb2, marketdata_pb2_grpc

MAX_INSTRUMENTS = 500  # one broker request's worth
MAX_INTERVAL_MS = 3_600_000


def _instruments(gateway: Gateway, raw: Sequence[str]) -> list[InstrumentId]:
    """Known instruments in request order, each once; the first unknown or malformed one is named."""
    if not raw:
        raise InvalidArgument("instruments", "required: at least one, e.g. NSE:INFY")
    if len(raw) > MAX_INSTRUMENTS:
        raise InvalidArgument("instruments", f"at most {MAX_INSTRUMENTS} per request, got {len(raw)}")
    found = (validation.instrument("instruments", value, gateway.lookup).id for value in raw)
    return list(dict.fromkeys(found))


def quote_to_proto(quote: Quote) -> marketdata_pb2.Quote:
    return marketdata_pb2.Quote(
        instrument=str(quote.instrument),
        last_price=convert.dec(quote.last_price),
        bid=convert.dec(quote.bid),
        ask=convert.dec(quote.ask),
        at=convert.timestamp(quote.at),
        broker=quote.broker,
    )


class MarketDataService(marketdata_pb2_grpc.MarketDataServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway
        self._book: QuoteBook = gateway.quotes

    async def GetQuotes(
        self, request: marketdata_pb2.GetQuotesRequest, context: grpc.aio.ServicerContext
    ) -> marketdata_pb2.GetQuotesResponse:
        instruments = _instruments(self._gw, request.instruments)
        quotes = await self._book.get(instruments)
        return marketdata_pb2.GetQuotesResponse(quotes=[quote_to_proto(quotes[i]) for i in instruments if i in quotes])

    async def StreamQuotes(
        self, request: marketdata_pb2.StreamQuotesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[marketdata_pb2.Quote]:
        instruments = _instruments(self._gw, request.instruments)
        if not 0 <= request.min_interval_ms <= MAX_INTERVAL_MS:
            raise InvalidArgument("min_interval_ms", f"must be 0-{MAX_INTERVAL_MS}, got {request.min_interval_ms}")
        await self._book.get(instruments)  # the first message comes at once, not after a poll interval
        # aclosing: a client's cancel ends the stream at a yield too, and the instruments are unfollowed at once.
        async with contextlib.aclosing(self._book.changes(instruments, request.min_interval_ms / 1000)) as changes:
            async for batch in changes:
                for quote in batch:
                    yield quote_to_proto(quote)
