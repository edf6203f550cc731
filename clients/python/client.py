"""One channel, one stub per service. Use it as a context manager so the channel is closed."""

from __future__ import annotations

from types import TracebackType

import grpc

from trademaster.v1 import accounts_pb2_grpc, orders_pb2_grpc, portfolio_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:50051"


class Client:
    def __init__(self, server: str = DEFAULT_SERVER) -> None:
        self.channel = grpc.insecure_channel(server)
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self.channel)
        self.accounts = accounts_pb2_grpc.AccountServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
