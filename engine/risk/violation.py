"""The error a refused order ends in."""

from engine.errors import FailedPrecondition


class RiskViolation(FailedPrecondition):
    """The order is well formed, but a limit or market rule refuses it now; `rule` names which, for callers to match."""

    def __init__(self, rule: str, problem: str) -> None:
        super().__init__(f"risk {rule}: {problem}")
        self.rule = rule
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuild from both parts, so the error survives crossing a Ray actor boundary."""
        return type(self), (self.rule, self.problem)
