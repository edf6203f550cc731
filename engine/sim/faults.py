"""Fault knobs per simulator endpoint: what reliability tests inject into a broker's wire.

A rule names an endpoint (the fronts share names such as `place`, `orders`, `quote`) or `*` for
all. Before the request is handled it may add latency, answer 5xx, or answer 429 (a burst counts
down). After an order-changing request has been handled, it may hold the response past any client
timeout or drop the connection: the broker has accepted, the client cannot know.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from engine.settings_base import StrictModel


class FaultRule(StrictModel):
    latency_ms: float = Field(0, ge=0, le=120_000)
    error_rate: float = Field(0, ge=0, le=1, description="answer 503 without handling the request")
    timeout_rate: float = Field(0, ge=0, le=1, description="handle it, then hold the response hang_seconds")
    hang_seconds: float = Field(30, ge=0, le=600)
    drop_rate: float = Field(0, ge=0, le=1, description="handle it, then close the connection unanswered")
    burst_429: int = Field(0, ge=0, description="answer the next N requests with 429")


class Before(StrEnum):
    ERROR = "error"
    LIMIT = "limit"


class After(StrEnum):
    TIMEOUT = "timeout"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class FaultDecision:
    latency_seconds: float = 0.0
    before: Before | None = None
    after: After | None = None
    hang_seconds: float = 0.0


NO_FAULT = FaultDecision()


class FaultPlan:
    def __init__(self, seed: int = 0) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._bursts: dict[str, int] = {}
        self._random = random.Random(seed)

    def set(self, endpoint: str, rule: FaultRule) -> None:
        self._rules[endpoint] = rule
        self._bursts[endpoint] = rule.burst_429

    def clear(self) -> None:
        self._rules.clear()
        self._bursts.clear()

    def rules(self) -> dict[str, FaultRule]:
        return dict(self._rules)

    def decide(self, endpoint: str) -> FaultDecision:
        key = endpoint if endpoint in self._rules else "*"
        rule = self._rules.get(key)
        if rule is None:
            return NO_FAULT
        draw = self._random.random
        before: Before | None = None
        if self._bursts.get(key, 0) > 0:
            self._bursts[key] -= 1
            before = Before.LIMIT
        elif rule.error_rate and draw() < rule.error_rate:
            before = Before.ERROR
        after: After | None = None
        if rule.timeout_rate and draw() < rule.timeout_rate:
            after = After.TIMEOUT
        elif rule.drop_rate and draw() < rule.drop_rate:
            after = After.DROP
        return FaultDecision(rule.latency_ms / 1000, before, after, rule.hang_seconds)
