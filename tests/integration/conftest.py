from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon shared by the integration tests (starting one costs several seconds of Ray)."""
    base = tmp_path_factory.mktemp("daemon")
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    d = Daemon(base / "data", artifacts / "daemon.log")
    d.start()
    yield d
    d.stop()
