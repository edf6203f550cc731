"""Wiring: config -> PostgreSQL -> Ray -> actors -> gRPC server, and the orderly way back down.

Start-up and recovery are the same path: every piece loads its state from PostgreSQL and then
syncs with the brokers, so a daemon killed at any moment comes back by simply starting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import ray
import uvloop

from actors.account import AccountActor, actor_name
from actors.ledger import LedgerActor
from actors.market_data import MarketDataActor
from engine.admin_token import ensure_admin
from engine.api.accounts import AccountService
from engine.api.auth import Authenticator
from engine.api.events import EventHub, SequencedHub, StreamLimits
from engine.api.fanout import Operations
from engine.api.gateway import AccountHandle, Gateway
from engine.api.guard import AuthInterceptor
from engine.api.marketdata import MarketDataService
from engine.api.metrics_http import MetricsServer, tls_context
from engine.api.operations import OperationsService
from engine.api.order_commands import OrderCommands
from engine.api.orders import OrderService
from engine.api.placement import Placement
from engine.api.pnl_sampler import PnlSampler
from engine.api.portfolio import PortfolioService
from engine.api.registry import AccountRegistry
from engine.api.security import SecurityService
from engine.api.server import CannotListen, build_server, follow_database, mark_serving
from engine.api.strategies import StrategyService
from engine.api.strategy_runner import Services, StrategyRunner, strategy_clock
from engine.api.trading import TradingStates
from engine.config import ServerSettings, Settings
from engine.demo import demo_accounts, demo_simulators
from engine.instrument_master import InstrumentMaster
from engine.marketdata import stale_after
from engine.marketdata.sources import quote_sources
from engine.security.credentials import register_plaintext
from engine.security.rate_limit import RateLimiter
from engine.security.secrets import SecretBox, load_or_create_key
from engine.sim.launcher import SimProcess
from engine.store.audit import AuditLog
from engine.store.database import EmbeddedPostgres, create_pool
from engine.store.migrate import migrate
from engine.store.orders import OrderStore
from engine.store.overrides import OverrideStore
from engine.store.pnl_samples import PnlSampleStore
from engine.store.routed import RoutedOrderStore
from engine.store.sessions import SessionStore
from engine.store.strategies import EVENT_CHANNEL as STRATEGY_EVENTS
from engine.store.strategies import StrategyStore
from engine.store.users import UserStore
from engine.web.server import WebServer
from trademaster.v1 import (
    accounts_pb2_grpc,
    marketdata_pb2_grpc,
    operations_pb2_grpc,
    orders_pb2_grpc,
    portfolio_pb2_grpc,
    security_pb2_grpc,
    strategies_pb2_grpc,
)

log = logging.getLogger("trademaster")


@dataclass
class _Resources:
    """What has been started so far, so shutdown stops exactly that, in reverse."""

    embedded: EmbeddedPostgres | None = None
    simulators: list[SimProcess] = field(default_factory=list)
    ray_started: bool = False
    actors: list = field(default_factory=list)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _check_addresses(server: ServerSettings) -> None:
    """Bind each address the daemon will serve on, and let go at once, before anything starts: an address in use
    is a configuration problem to report in one line, not minutes later from a half-started daemon."""
    for setting, listen in (("listen", server.listen), ("metrics_listen", server.metrics_listen),
                            ("web_listen", server.web_listen)):  # fmt: skip
        if not listen:
            continue
        host, port = _split(listen)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
            socket.create_server((host, port), family=family).close()
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
            raise CannotListen(f"cannot listen on {listen} (server.{setting}): {why}") from exc


def _warn_if_exposed(server: ServerSettings) -> None:
    """Without TLS, tokens and orders cross the wire in the clear: fine on loopback, a leak anywhere else."""
    for listen in filter(None, (server.listen, server.web_listen)):
        host, _ = _split(listen)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if server.tls_cert_file is None and not loopback:
            log.warning("serving on %s without TLS: API tokens travel in the clear; set server.tls_cert_file", listen)


def _start_ray(settings: Settings) -> None:
    address = settings.ray.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        context = ray.init(address=address, namespace=settings.ray.namespace, log_to_driver=False)
    else:
        context = ray.init(
            num_cpus=settings.ray.num_cpus,
            namespace=settings.ray.namespace,
            include_dashboard=False,
            log_to_driver=False,
        )
    log.info("Ray ready (%s); actor logs under %s", address or "local", context.address_info["session_dir"])


def _secret_box(settings: Settings) -> SecretBox:
    """The key for broker credentials at rest, created on the first start; raises SecretError if unusable."""
    key_file = settings.security.key_path(settings.data_dir)
    key, created = load_or_create_key(key_file, settings.security.key_env)
    if created:
        log.warning("created the key for broker credentials at %s; back it up: without it they are lost", key_file)
    return SecretBox(key)


async def _serve(settings: Settings, dsn: str, res: _Resources, box: SecretBox, new_admin_token: bool) -> None:
    pool = await create_pool(dsn, settings.database.pool_size)
    await migrate(pool)
    encrypted = await SessionStore(pool, box).encrypt_plaintext()
    if encrypted:
        log.info("encrypted %d broker session tokens an older version stored in plaintext", encrypted)
    store = OrderStore(pool)

    ledger = LedgerActor.options(name="ledger").remote(dsn)
    res.actors.append(ledger)
    handles = []
    for account in settings.accounts:
        actor = AccountActor.options(name=actor_name(account.id), resources=account.ray_resources).remote(
            account, settings.paper, settings.routing, str(settings.data_dir), dsn, settings.security
        )
        res.actors.append(actor)
        handles.append(AccountHandle(account, actor))
    market = MarketDataActor.options(name="market-data").remote(quote_sources(settings.accounts), settings.market_data)
    res.actors.append(market)  # created with the others, so its worker process starts while they start
    await asyncio.gather(ledger.sync.remote(), *(h.actor.start.remote() for h in handles))
    log.info("actors ready: ledger and %d accounts", len(handles))
    await market.start.remote()
    gateway = Gateway(
        handles,
        settings.default_account,
        ledger,
        store,
        InstrumentMaster.default(),
        market_data=market,
        quote_timeout=settings.market_data.quote_timeout_seconds,
        quote_max_age=stale_after(settings.market_data.poll_interval_seconds),
    )
    limits = StreamLimits.of(settings.server)
    hub = EventHub(store, dsn, limits=limits)
    await gateway.start()
    await hub.start()
    pnl_samples = PnlSampleStore(pool)
    sampler = PnlSampler(
        gateway, pnl_samples, settings.portfolio.pnl_sample_seconds, settings.portfolio.pnl_history_days
    )
    sampler.start()
    routed = RoutedOrderStore(pool)
    overrides = OverrideStore(pool)
    registry = await AccountRegistry.load(settings.accounts, overrides)
    states = await TradingStates.load(overrides, registry, store)
    commands = OrderCommands(gateway, states)
    placement = Placement(gateway, routed, settings.routing, registry, states, settings.risk_limits())
    operations = Operations(gateway, placement, registry, states, commands)
    users = UserStore(pool)
    token_file = settings.security.admin_token_path(settings.data_dir)
    first_token = await ensure_admin(users, token_file, renew=new_admin_token)
    audit = AuditLog(pool)
    audit.start()
    authenticator = Authenticator(users, settings.security.token_cache_seconds)
    limiter = RateLimiter(settings.security.api_requests_per_second, settings.security.api_burst)
    security = SecurityService(users, authenticator, audit, list(gateway.accounts))
    strategy_store = StrategyStore(pool)
    strategy_events = SequencedHub(strategy_store, dsn, STRATEGY_EVENTS, limits=limits)
    await strategy_events.start()
    executors = Services(placement, commands, operations, states, registry)
    runner = StrategyRunner(strategy_store, hub, gateway, users, executors, dsn, strategy_clock())
    await runner.start()  # strategies a previous run left live go on from their saved state
    strategy_service = StrategyService(strategy_store, runner, gateway, registry, hub, strategy_events)
    services = [
        (orders_pb2_grpc.add_OrderServiceServicer_to_server, OrderService(gateway, hub, placement, routed, commands)),
        (portfolio_pb2_grpc.add_PortfolioServiceServicer_to_server, PortfolioService(gateway, pnl_samples)),
        (accounts_pb2_grpc.add_AccountServiceServicer_to_server, AccountService(gateway, registry, states)),
        (security_pb2_grpc.add_SecurityServiceServicer_to_server, security),
        (marketdata_pb2_grpc.add_MarketDataServiceServicer_to_server, MarketDataService(gateway)),
        (
            operations_pb2_grpc.add_OperationsServiceServicer_to_server,
            OperationsService(gateway, operations, states, registry),
        ),
        (strategies_pb2_grpc.add_StrategyServiceServicer_to_server, strategy_service),
    ]
    server, health = build_server(services, AuthInterceptor(authenticator, limiter, audit), settings.server)
    await server.start()
    loop = asyncio.get_running_loop()
    metrics: MetricsServer | None = None
    if settings.server.metrics_listen:
        host, port = _split(settings.server.metrics_listen)
        metrics = MetricsServer(host, port, tls_context(settings.server), authenticator, loop)
    web: WebServer | None = None
    if settings.server.web_listen:
        web = WebServer(settings.server, _split(settings.server.web_listen), _split(settings.server.listen))
        await web.start()
    await mark_serving(health)
    gc.collect()
    gc.freeze()  # start-up's objects live as long as the daemon: full collections skip them, so pause the loop less
    database_health = asyncio.create_task(follow_database(health, pool), name="database-health")
    log.info("serving gRPC on %s", settings.server.listen)
    _warn_if_exposed(settings.server)
    print(f"trademaster: serving on {settings.server.listen}", flush=True)
    if web is not None:
        print(f"trademaster: dashboard and gRPC-web on {web.url}", flush=True)
    if first_token:
        print(f"trademaster: admin API token, shown once (the CLI reads {token_file}): {first_token}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: draining calls")
    database_health.cancel()
    if web is not None:
        web.close()  # no new browser calls; the streams it relays end with the gRPC server's stop
    await health.enter_graceful_shutdown()
    await server.stop(settings.server.shutdown_grace_seconds)
    if web is not None:
        await web.wait_closed()
    if metrics is not None:
        await asyncio.to_thread(metrics.stop)
    await runner.stop()
    await strategy_events.stop()
    await hub.stop()
    await sampler.stop()
    await audit.stop()
    await gateway.stop()
    await market.stop.remote()  # before the accounts, so no quote request finds them gone
    await asyncio.gather(*(h.actor.stop.remote() for h in handles), return_exceptions=True)
    await pool.close()


def _start_demo(settings: Settings, res: _Resources) -> Settings:
    """No accounts configured: start the simulated brokers and trade the demo accounts at them."""
    urls = {}
    for broker, sim_settings in demo_simulators(settings.paper).items():
        process = SimProcess.start(sim_settings, settings.data_dir / "sim" / broker)
        res.simulators.append(process)
        urls[broker] = process.url
        log.info("demo: simulated %s broker at %s", broker, process.url)
    return settings.model_copy(update={"accounts": demo_accounts(urls)})


def run(settings: Settings, new_admin_token: bool = False) -> None:
    """Run the daemon until SIGINT or SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _check_addresses(settings.server)
    box = _secret_box(settings)  # before anything starts, so a bad key stops the daemon cleanly
    res = _Resources()
    try:
        if not settings.accounts:
            settings = _start_demo(settings, res)
        register_plaintext(settings.accounts)
        dsn = settings.database.url
        with ThreadPoolExecutor(1, thread_name_prefix="embedded-postgres") as starter:
            embedded = None if dsn else starter.submit(EmbeddedPostgres.start, settings.data_dir)
            try:  # Ray's start takes seconds: the database starts meanwhile, so a restart serves sooner
                _start_ray(settings)
                res.ray_started = True
            finally:
                if embedded is not None:
                    res.embedded = embedded.result()
        if res.embedded is not None:
            dsn = res.embedded.dsn
        uvloop.run(_serve(settings, dsn, res, box, new_admin_token))
    finally:
        for actor in reversed(res.actors):
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if res.ray_started:
            ray.shutdown()
        if res.embedded is not None:
            res.embedded.stop()
        for simulator in res.simulators:
            simulator.stop()
        log.info("stopped")
