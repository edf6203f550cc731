"""Brokers' daily instrument dumps, downloaded once per day and cached on disk.

Brokers rebuild their instrument lists every morning (new contracts, expiries, lot changes) and ask
clients to fetch them once a day rather than per request; a restart the same day reuses the file.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from engine.brokers.http import BrokerHttp
from engine.files import write_atomically


async def daily_dump(http: BrokerHttp, url: str, cache_dir: Path, name: str, today: date) -> bytes:
    """The dump at `url` for `today`, from `cache_dir/<name>-<today>` if already fetched; older days are removed."""
    path = cache_dir / f"{name}-{today.isoformat()}"
    if path.exists():
        return path.read_bytes()
    response = await http.request("GET", url, category="other")
    write_atomically(path, response.content)
    for old in cache_dir.glob(f"{name}-*"):
        if old != path:
            old.unlink(missing_ok=True)
    return response.content
