"""Pre-trade risk: refuse an order before it reaches a broker when it breaks a limit or a market rule.

Pure by design: the caller passes the account's state and the layered limits, so a check runs in
microseconds where the request already is, with no actor hop on the order path.
"""

from engine.risk.context import RiskContext
from engine.risk.limits import RiskLimits, effective_limits
from engine.risk.rules import SessionCalendar, check_order
from engine.risk.violation import RiskViolation

__all__ = [
    "RiskContext",
    "RiskLimits",
    "RiskViolation",
    "SessionCalendar",
    "check_order",
    "effective_limits",
]
