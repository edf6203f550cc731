"""Read `trademaster sim` settings from a JSON or TOML file plus command-line overrides."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.settings_base import describe_errors
from engine.sim.config import SimSettings


class SimConfigError(Exception):
    """A simulator configuration problem, worded for the person who wrote it."""


def load_sim_settings(path: Path | None, broker: str | None, clock: str | None) -> SimSettings:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SimConfigError(f"simulator config not found: {path}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise SimConfigError(f"{path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    if broker:
        data["broker"] = broker
    if clock:
        try:
            data["clock_start"] = datetime.fromisoformat(clock)
        except ValueError:
            raise SimConfigError(f"--clock: expected an ISO 8601 instant, got {clock!r}") from None
    if "broker" not in data:
        raise SimConfigError("broker: required (--broker kite|upstox, or broker in the config file)")
    try:
        return SimSettings(**data)
    except ValidationError as exc:
        raise SimConfigError(describe_errors("invalid simulator settings", exc)) from None
