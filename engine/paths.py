"""Where the daemon keeps its files by default; the CLI needs this too, without the daemon's imports."""

from __future__ import annotations

import os
from pathlib import Path

ADMIN_TOKEN_NAME = "admin.token"


def default_data_dir() -> Path:
    """TRADEMASTER_DATA_DIR, else the XDG data home: where `serve` keeps its database, key and admin token."""
    explicit = os.environ.get("TRADEMASTER_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "trademaster"
