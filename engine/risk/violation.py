"""The error a refused order ends in."""

from __future__ import annotations

from engine.errors import FailedPrecondition


class RiskViolation(FailedPrecondition):
    """The order is well formed, but a limit or market rule refuses it now; `rule` names which, for callers to match.

    `account`, once known, leads the message: a routed order's legs go to several accounts, each with its limits.
    """

    def __init__(self, rule: str, problem: str, account: str = "") -> None:
        self.rule = rule
        self.problem = problem
        self.account = account
        super().__init__(f"account {account}: {self.reason}" if account else self.reason)

    @property
    def reason(self) -> str:
        """The message without the account: routing shows it beside the account it excluded."""
        return f"risk {self.rule}: {self.problem}"

    def at(self, account: str) -> RiskViolation:
        """The same violation, naming the account whose limits refused the order."""
        return RiskViolation(self.rule, self.problem, account)

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        """Rebuild from every part, so the error survives crossing a Ray actor boundary."""
        return type(self), (self.rule, self.problem, self.account)
