"""AccountActor: one per configured broker account, owning its adapter and order lifecycle."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import ray

from engine.account import AccountRuntime
from engine.brokers.base import ModifyRequest, Quote
from engine.brokers.factory import build_adapter, build_auto_login
from engine.brokers.pacing import OrderGate, order_windows
from engine.config import AccountSettings, RoutingSettings, SecuritySettings
from engine.domain import InstrumentId, Order, OrderRequest
from engine.domain.accounts import AccountSnapshot, Submission
from engine.errors import ApiError
from engine.routing import CircuitBreaker
from engine.security import redaction
from engine.security.credentials import reveal_account
from engine.security.secrets import SecretBox, load_key
from engine.sim.config import MarketSettings
from engine.store.database import create_pool
from engine.store.orders import OrderStore
from engine.store.sessions import SessionStore

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def actor_name(account_id: str) -> str:
    """The Ray name of an account's actor, by which other actors find it."""
    return f"account:{account_id}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class AccountActor:
    """Order submission is never retried by Ray (max_task_retries=0): a retry could send twice."""

    def __init__(
        self,
        account: AccountSettings,
        market: MarketSettings,
        routing: RoutingSettings,
        data_dir: str,
        dsn: str,
        security: SecuritySettings,
    ) -> None:
        """`security` says where the key is; the key itself never travels as an argument through Ray."""
        redaction.install_process()
        self._account = account
        self._market = market
        self._routing = routing
        self._data_dir = Path(data_dir)
        self._dsn = dsn
        self._security = security
        self._runtime: AccountRuntime | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        await self._ready()

    async def _start(self) -> None:
        box = SecretBox(load_key(self._security.key_path(self._data_dir), self._security.key_env))
        account = reveal_account(self._account, box)
        pool = await create_pool(self._dsn, 4)
        adapter = build_adapter(account, self._market, self._data_dir)
        pace = order_windows(self._account.orders_per_second, adapter.order_limits)
        runtime = AccountRuntime(
            self._account.id,
            self._account.broker_name,
            adapter,
            OrderStore(pool),
            self._account.sync_interval_seconds,
            sessions=SessionStore(pool, box),
            auto_login=build_auto_login(account),
            gate=OrderGate(self._account.id, pace, self._account.order_queue_limit, _utc_now),
            breaker=CircuitBreaker(self._routing.circuit_failures, self._routing.circuit_reset_seconds),
            in_flight_grace=self._account.in_flight_grace_seconds,
        )
        try:
            await runtime.start()
        except BaseException:  # the next message starts afresh: leave no pool or connections behind
            await runtime.stop()
            await pool.close()
            raise
        self._runtime = runtime

    async def _ready(self) -> AccountRuntime:
        """The runtime, started by the first message after a Ray restart, once however many messages arrive."""
        async with self._starting:
            if self._runtime is None:
                await self._start()
        assert self._runtime is not None
        return self._runtime

    async def submit_many(self, requests: list[OrderRequest]) -> list[Submission | BaseException]:
        """Orders that reached the gateway together (engine/api/coalesce.py), submitted concurrently and each
        answered on its own: one order's refusal is its answer, not the batch's. An unexpected error loses its
        traceback on the way back as a value, so it is logged here."""
        runtime = await self._ready()
        results = await asyncio.gather(*(runtime.submit(r) for r in requests), return_exceptions=True)
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, ApiError):
                log.error("order %s failed", request.client_order_id, exc_info=result)
        return results

    async def last_price(self, instrument: InstrumentId) -> Decimal | None:
        return await (await self._ready()).last_price(instrument)

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        return await (await self._ready()).quotes(instruments)

    async def cancel(self, order_id: str) -> Order:
        return await (await self._ready()).cancel(order_id)

    async def modify(self, order_id: str, change: ModifyRequest) -> Order:
        return await (await self._ready()).modify(order_id, change)

    async def login_url(self) -> str:
        return (await self._ready()).login_url()

    async def complete_login(self, redirect: str) -> None:
        await (await self._ready()).complete_login(redirect)

    async def snapshot(self) -> AccountSnapshot:
        return (await self._ready()).snapshot()

    async def sync_now(self) -> AccountSnapshot:
        """Sync with the broker first: for callers about to act on the positions (exits), not on a cached view."""
        runtime = await self._ready()
        await runtime.sync()
        return runtime.snapshot()

    def node_id(self) -> str:
        """The Ray node this account runs on: where its orders leave from (placed by `ray_resources`)."""
        return ray.get_runtime_context().get_node_id()

    async def stop(self) -> None:
        if self._runtime is not None:
            await self._runtime.stop()
            self._runtime = None
