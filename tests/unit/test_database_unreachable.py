"""Which failures mean "the database is unreachable", told from the errors a stopped server really produces,
and how the API answers them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

import asyncpg
import grpc
import pytest
import ray.exceptions

from engine.api.interceptors import status_for
from engine.store.database import (
    DatabaseUnreachable,
    connect,
    create_pool,
    database_unreachable,
)
from tests.integration.daemon import free_port
from tests.integration.postgres import Database


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    running = Database(tmp_path_factory.mktemp("db"))
    yield running
    running.stop()


async def _raised(call: Awaitable[object]) -> Exception:
    try:
        await call
    except Exception as exc:
        return exc
    raise AssertionError("no error raised")


async def test_a_stopped_server_is_unreachable_and_the_pool_recovers_once_it_is_back(server: Database) -> None:
    pool = await create_pool(server.dsn, 2)
    held = await asyncpg.connect(server.dsn)
    in_flight = asyncio.ensure_future(pool.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(server.stop)
    try:
        errors = {
            "query in flight": await _raised(in_flight),
            "pool query": await _raised(pool.fetchval("SELECT 1")),
            "pool acquire": await _raised(pool.acquire()),
            "connection held": await _raised(held.fetchval("SELECT 1")),
            "connect": await _raised(connect(server.dsn)),
        }
    finally:
        server.start()
    assert isinstance(errors["query in flight"], asyncpg.ConnectionDoesNotExistError)
    assert isinstance(errors["connection held"], asyncpg.InterfaceError)
    assert isinstance(errors["connect"], DatabaseUnreachable) and isinstance(errors["pool query"], DatabaseUnreachable)
    for what, exc in errors.items():
        assert database_unreachable(exc), (what, type(exc), exc)
    assert await pool.fetchval("SELECT 1") == 1, "the same pool serves again without being recreated"
    await pool.close()


async def test_giving_back_a_connection_the_server_dropped_does_not_fail_the_call(server: Database) -> None:
    """asyncpg's own reset query would raise here, after the caller's transaction had committed; the daemon's
    pool sends none, and replaces the dead connection at the next acquire."""
    pool = await create_pool(server.dsn, 2)
    killer = await asyncpg.connect(server.dsn)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1")
        async with pool.acquire() as conn:
            assert await killer.fetchval("SELECT pg_terminate_backend($1, 5000)", conn.get_server_pid())
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await killer.close()
        await pool.close()


async def test_a_pooled_connection_is_given_back_without_a_reset_query(server: Database) -> None:
    """Pooled connections hold no session state, so giving one back costs no round trip: the last statement the
    server saw on it is the caller's own."""
    pool = await create_pool(server.dsn, 2)
    watcher = await asyncpg.connect(server.dsn)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT 'the last statement'")
            pid = conn.get_server_pid()
        await asyncio.sleep(0.05)
        last = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        assert last == "SELECT 'the last statement'"
    finally:
        await watcher.close()
        await pool.close()


async def test_a_refused_connection_is_unreachable_and_names_no_address() -> None:
    port = free_port()
    exc = await _raised(connect(f"postgresql://postgres@127.0.0.1:{port}/postgres"))
    assert isinstance(exc, DatabaseUnreachable) and isinstance(exc.__cause__, ConnectionRefusedError)
    assert database_unreachable(exc) and str(port) not in str(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ],
)
def test_what_the_server_says_while_it_cannot_serve_is_unreachable(exc: Exception) -> None:
    assert database_unreachable(exc)


async def test_a_failed_statement_is_not_an_outage(server: Database) -> None:
    pool = await create_pool(server.dsn, 2)
    try:
        syntax = await _raised(pool.fetchval("SELEC 1"))
        timeout = await _raised(pool.fetchval("SELECT pg_sleep(5)", timeout=0.1))
    finally:
        await pool.close()
    others = [
        syntax,
        timeout,  # the statement may have run: not a refusal to retry blindly
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        FileNotFoundError(2, "No such file or directory"),  # not from connecting to the database
        TimeoutError(),
        ValueError("bad"),
    ]
    for exc in others:
        assert not database_unreachable(exc), (type(exc), exc)


def test_the_api_answers_unavailable_also_for_an_actor_s_error() -> None:
    cause = DatabaseUnreachable("cannot connect: No such file or directory")
    wrapped = ray.exceptions.RayTaskError("AccountActor.submit", "remote traceback", cause).as_instanceof_cause()
    for exc in (
        cause,
        wrapped,
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ):
        code, message = status_for(exc)
        assert code == grpc.StatusCode.UNAVAILABLE, exc
        assert message.startswith("the database is unreachable (") and "client_order_id" in message, message
    assert "No such file or directory" in status_for(wrapped)[1] and "remote traceback" not in status_for(wrapped)[1]
    assert status_for(ValueError("bad"))[0] == grpc.StatusCode.INTERNAL
