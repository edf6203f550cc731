"""Trading states and the scopes they are set on: the vocabulary of the kill switch and MTM guards."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TradingState(StrEnum):
    """What an account may still do, least restrictive first."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only orders that reduce exposure
    HALTED = "HALTED"  # only cancels

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class ScopeKind(StrEnum):
    GLOBAL = "GLOBAL"
    GROUP = "GROUP"
    ACCOUNT = "ACCOUNT"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str = ""  # the group or account; empty for GLOBAL

    def __str__(self) -> str:
        return "global" if self.kind is ScopeKind.GLOBAL else f"{self.kind.lower()} {self.name}"


GLOBAL = Scope(ScopeKind.GLOBAL)
