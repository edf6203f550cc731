"""One channel, one stub per service. Use it as a context manager so the channel is closed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import grpc

from trademaster.v1 import (
    accounts_pb2_grpc,
    marketdata_pb2_grpc,
    operations_pb2_grpc,
    orders_pb2_grpc,
    portfolio_pb2_grpc,
    security_pb2_grpc,
    strategies_pb2_grpc,
)

DEFAULT_SERVER = "127.0.0.1:50051"


@dataclass(frozen=True)
class TlsOptions:
    """How to reach a daemon that serves TLS (server.tls_cert_file is set).

    ca_file: the CA that signed the daemon's certificate; None trusts gRPC's bundled public roots.
    cert_file, key_file: this client's certificate and key, for a daemon that requires mutual TLS.
    server_name: the name to check the daemon's certificate against instead of the address's host, e.g.
    when connecting by IP or through a tunnel to a daemon whose certificate names its DNS name.
    """

    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a TLS client certificate needs its key: give both cert_file and key_file, or neither")


def open_channel(server: str, tls: TlsOptions | None = None) -> grpc.Channel:
    """A plaintext channel, or a TLS one when `tls` is given."""
    if tls is None:
        return grpc.insecure_channel(server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file), private_key=_read(tls.key_file), certificate_chain=_read(tls.cert_file)
    )
    options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else None
    return grpc.secure_channel(server, credentials, options)


def _read(path: Path | str | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call.

    Call credentials would do this too, but gRPC only sends them over TLS, and the local default is plaintext
    on loopback.
    """

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return _Details(  # type: ignore[return-value]  # grpc reads these attributes, it needs no subclass
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)


class Client:
    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, tls: TlsOptions | None = None) -> None:
        self._raw = open_channel(server, tls)
        self.channel = grpc.intercept_channel(self._raw, _BearerToken(token)) if token else self._raw
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self.channel)
        self.accounts = accounts_pb2_grpc.AccountServiceStub(self.channel)
        self.security = security_pb2_grpc.SecurityServiceStub(self.channel)
        self.market_data = marketdata_pb2_grpc.MarketDataServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsServiceStub(self.channel)
        self.strategies = strategies_pb2_grpc.StrategyServiceStub(self.channel)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
