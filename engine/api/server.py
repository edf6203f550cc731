"""Assemble the gRPC server: services, health, reflection and interceptors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.api.guard import AuthInterceptor
from engine.api.interceptors import ErrorAndMetricsInterceptor
from engine.config import ServerSettings
from trademaster.v1 import (
    accounts_pb2,
    marketdata_pb2,
    operations_pb2,
    orders_pb2,
    portfolio_pb2,
    security_pb2,
    strategies_pb2,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 4 * 1024 * 1024
"""The largest message the API takes; the gRPC-web proxy refuses bigger requests with the same limit."""
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DATABASE_PROBE_SECONDS = 1.0
SERVICE_NAMES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    portfolio_pb2.DESCRIPTOR.services_by_name["PortfolioService"].full_name,
    accounts_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    security_pb2.DESCRIPTOR.services_by_name["SecurityService"].full_name,
    operations_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name,
    marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"].full_name,
    strategies_pb2.DESCRIPTOR.services_by_name["StrategyService"].full_name,
)
Registration = tuple[Callable[[Any, grpc.aio.Server], None], object]
"""A generated `add_<Service>Servicer_to_server` and the servicer it adds."""


def build_server(
    services: Sequence[Registration], auth: AuthInterceptor, settings: ServerSettings
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(
        # The first is outermost: it maps what the auth interceptor and the services raise to statuses.
        interceptors=[ErrorAndMetricsInterceptor(), auth],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    for add, servicer in services:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    credentials = _credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if port == 0:
        why = "in use, or not an address of this host"
        raise CannotListen(f"cannot listen on {settings.listen} (server.listen): {why}")
    return server, health_servicer


class CannotListen(OSError):
    """An address the daemon is configured to serve on cannot be bound: a configuration problem, told to the
    operator in one line rather than a traceback."""


def _credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; a client CA also makes clients prove who they are (mutual TLS).

    The files were checked when the configuration loaded, so a bad one has already stopped start-up.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def mark_serving(
    health_servicer: health.aio.HealthServicer, status: health_pb2.HealthCheckResponse.ServingStatus = _SERVING
) -> None:
    """Report each service as serving (or `status`), so per-service health checks (load balancers, k8s) work too."""
    for name in SERVICE_NAMES:
        await health_servicer.set(name, status)


async def follow_database(health_servicer: health.aio.HealthServicer, pool: asyncpg.Pool) -> None:
    """Forever: report the services NOT_SERVING while the database fails a probe (their calls answer UNAVAILABLE
    then) and SERVING again once it answers. The server itself (the empty service name, which readiness probes
    ask) stays SERVING: the daemon is up, and recovers by itself."""
    serving = True
    while True:
        await asyncio.sleep(DATABASE_PROBE_SECONDS)
        try:
            await pool.fetchval("SELECT 1", timeout=5 * DATABASE_PROBE_SECONDS)
            up, why = True, ""
        except Exception as exc:  # whatever the reason, the services cannot work without it
            up, why = False, f" ({type(exc).__name__}: {exc})"
        if up != serving:
            serving = up
            state = "back: services SERVING" if up else f"unreachable{why}: services NOT_SERVING"
            log.warning("the database is %s", state)
            await mark_serving(health_servicer, _SERVING if up else _NOT_SERVING)
