"""Choose the account(s) for an order and say why, in one line a trader can check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from engine.errors import FailedPrecondition
from engine.ledger.charges import InstrumentKind
from engine.routing.candidates import Candidate, OrderShape
from engine.routing.scoring import RoutingWeights, Scores, order_fee, score_all
from engine.routing.split import Leg, Option, split


class RoutingMode(StrEnum):
    STANDARD = "standard"  # the order's account, or the default account
    ORCHESTRATOR = "orchestrator"  # the daemon picks among the accounts (of a group)


class NoRoute(FailedPrecondition):
    """No account, or no set of accounts, can take the order; the message lists why for each."""


@dataclass(frozen=True, slots=True)
class CandidateReport:
    account: str
    broker: str
    capacity: int
    excluded: str
    fee: Decimal | None = None
    scores: Scores | None = None
    quantity: int = 0  # what the decision gives it


@dataclass(frozen=True, slots=True)
class RouteDecision:
    mode: RoutingMode
    legs: tuple[Leg, ...]
    reason: str
    candidates: tuple[CandidateReport, ...] = ()


def standard(account: str, quantity: int, why: str) -> RouteDecision:
    return RouteDecision(RoutingMode.STANDARD, (Leg(account, quantity),), why)


def route(
    order: OrderShape, candidates: Sequence[Candidate], weights: RoutingWeights, kind: InstrumentKind
) -> RouteDecision:
    """The orchestrator's choice among `candidates`; raises NoRoute when they cannot cover the order."""
    eligible = [c for c in candidates if not c.excluded and c.capacity > 0]
    fees = [order_fee(c, order, kind) for c in eligible]
    scores = score_all(eligible, order, fees, weights)
    scored = {c.account: (c, fee, s) for c, fee, s in zip(eligible, fees, scores, strict=True)}
    legs = split(order.quantity, [Option(c.account, c.capacity, s.total) for c, _, s in scored.values()])
    if not legs:
        raise NoRoute(_no_route(order, candidates))
    given = {leg.account: leg.quantity for leg in legs}
    reports = tuple(
        CandidateReport(
            c.account,
            c.broker,
            c.capacity,
            c.excluded,
            scored[c.account][1] if c.account in scored else None,
            scored[c.account][2] if c.account in scored else None,
            given.get(c.account, 0),
        )
        for c in sorted(candidates, key=lambda c: (-_total(scored.get(c.account)), c.account))
    )
    return RouteDecision(RoutingMode.ORCHESTRATOR, tuple(legs), _reason(order, legs, reports, weights), reports)


def _total(entry: tuple[Candidate, Decimal, Scores] | None) -> float:
    return entry[2].total if entry else -1.0


def _no_route(order: OrderShape, candidates: Sequence[Candidate]) -> str:
    if not candidates:
        return "no account to route to: none is configured (or none is in the group)"
    why = "; ".join(f"{c.account}: {c.excluded or f'can take {c.capacity}'}" for c in candidates)
    return f"no account, or set of accounts, can take {order.side} {order.quantity} {order.instrument}: {why}"


def _factor_detail(factor: str, win: CandidateReport, other: CandidateReport) -> str:
    w, o = win.scores, other.scores
    assert w is not None and o is not None
    if factor == "fees":
        return f"fees ₹{win.fee} vs ₹{other.fee}"
    if factor == "margin":
        return f"capacity {win.capacity} vs {other.capacity}, margin score {w.margin:.2f} vs {o.margin:.2f}"
    return f"{factor} score {getattr(w, factor):.2f} vs {getattr(o, factor):.2f}"


def _reason(order: OrderShape, legs: Sequence[Leg], reports: Sequence[CandidateReport], weights: RoutingWeights) -> str:
    ranked = [r for r in reports if r.scores is not None]
    if len(legs) > 1:
        largest = max(ranked, key=lambda r: r.capacity)
        parts = ", ".join(f"{leg.quantity} to {leg.account}" for leg in legs)
        return (
            f"split {order.quantity} across {len(legs)} accounts ({parts}): no single account can take it all"
            f" (largest capacity {largest.capacity} at {largest.account})"
        )
    win = next(r for r in ranked if r.quantity)
    others = [r for r in ranked if r is not win]
    if not others:
        shut = "; ".join(f"{r.account}: {r.excluded}" for r in reports if r is not win)
        return f"{win.account} is the only account that can take it" + (f" ({shut})" if shut else "")
    runner = others[0]
    assert win.scores is not None and runner.scores is not None
    if runner.scores.total > win.scores.total:
        return (
            f"{win.account} can take all {order.quantity} in one order; {runner.account} scored higher"
            f" ({runner.scores.total:.3f} vs {win.scores.total:.3f}) but can take only {runner.capacity}"
        )
    mine, theirs = win.scores.factors(), runner.scores.factors()
    weight = weights.model_dump()
    gaps = {name: weight[name] * (mine[name] - theirs[name]) for name in sorted(mine)}
    factor = max(gaps, key=lambda name: gaps[name])
    if gaps[factor] <= 0:
        return f"{win.account} and {runner.account} scored the same ({win.scores.total:.3f}); the tie goes by name"
    return (
        f"{win.account} scored {win.scores.total:.3f} against {runner.account}'s {runner.scores.total:.3f},"
        f" mostly on {factor}: {_factor_detail(factor, win, runner)}"
    )
