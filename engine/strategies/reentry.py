"""The re-entry rule of a bracket: whether another entry is allowed, and the cool-down before it.

The cool-down is measured on the runner's clock (Tick.now): it starts at the first Tick after the
attempt ended, because order updates and refusals carry no clock of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from engine.strategies.params import ReEntry

Reason = Literal["reject", "stop_loss"]


def allowed(rule: ReEntry | None, attempt: int, reason: Reason) -> bool:
    """Whether attempt number `attempt` (1 = the first entry) may be followed by another after `reason`."""
    if rule is None or attempt > rule.max_attempts:
        return False
    return rule.after_reject if reason == "reject" else rule.after_stop_loss


class CoolDown(BaseModel):
    waiting: bool = False
    until: datetime | None = None

    def begin(self) -> None:
        self.waiting, self.until = True, None

    def ready(self, now: datetime, seconds: int) -> bool:
        """Start the clock on the first call after `begin`; True (and done waiting) once it has run out."""
        if not self.waiting:
            return False
        if self.until is None:
            self.until = now + timedelta(seconds=seconds)
        if now < self.until:
            return False
        self.waiting, self.until = False, None
        return True
