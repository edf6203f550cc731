"""A PostgreSQL server that tests stop and start under a running daemon, to cause a database outage."""

from __future__ import annotations

from pathlib import Path

from engine.store.database import EmbeddedPostgres


class Database:
    """An embedded server in `data_dir`; started again there, it answers at the same DSN (a unix socket in it)."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._server: EmbeddedPostgres | None = EmbeddedPostgres.start(data_dir)
        self.dsn = self._server.dsn

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def start(self) -> None:
        self._server = EmbeddedPostgres.start(self._dir)
        assert self._server.dsn == self.dsn, "a restarted server must answer where its clients look"
