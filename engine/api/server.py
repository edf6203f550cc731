"""Assemble the gRPC server: services, health, reflection and interceptors."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.api.accounts import AccountService
from engine.api.events import EventHub
from engine.api.gateway import Gateway
from engine.api.guard import AuthInterceptor
from engine.api.interceptors import ErrorAndMetricsInterceptor
from engine.api.orders import OrderService
from engine.api.placement import Placement
from engine.api.portfolio import PortfolioService
from engine.api.security import SecurityService
from engine.config import ServerSettings
from engine.store.routed import RoutedOrderStore
from trademaster.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
)

_MAX_MESSAGE = 4 * 1024 * 1024
_SERVING = health_pb2.HealthCheckResponse.SERVING
SERVICE_NAMES = (
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    portfolio_pb2.DESCRIPTOR.services_by_name["PortfolioService"].full_name,
    accounts_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    security_pb2.DESCRIPTOR.services_by_name["SecurityService"].full_name,
)


def build_server(
    gateway: Gateway,
    hub: EventHub,
    placement: Placement,
    routed: RoutedOrderStore,
    security: SecurityService,
    auth: AuthInterceptor,
    settings: ServerSettings,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(
        # The first is outermost: it maps what the auth interceptor and the services raise to statuses.
        interceptors=[ErrorAndMetricsInterceptor(), auth],
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderService(gateway, hub, placement, routed), server)
    portfolio_pb2_grpc.add_PortfolioServiceServicer_to_server(PortfolioService(gateway), server)
    accounts_pb2_grpc.add_AccountServiceServicer_to_server(AccountService(gateway), server)
    security_pb2_grpc.add_SecurityServiceServicer_to_server(security, server)
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
        raise OSError(f"cannot listen on {settings.listen}")
    return server, health_servicer


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


async def mark_serving(health_servicer: health.aio.HealthServicer) -> None:
    """Report each service as serving, so per-service health checks (load balancers, k8s) work too."""
    for name in SERVICE_NAMES:
        await health_servicer.set(name, _SERVING)
