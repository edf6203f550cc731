"""How good an account is for an order, factor by factor, each factor in [0, 1].

The total is the weighted mean of the factors, so weights are relative and only their ratios matter.
Factors compare candidates with each other (the cheapest fee scores 1, a fee twice as high 0.5),
which keeps the total meaningful whatever the order's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import Field

from engine.domain.accounts import CircuitState
from engine.ledger.charges import InstrumentKind, order_charges
from engine.routing.candidates import Candidate, OrderShape
from engine.settings_base import StrictModel


class RoutingWeights(StrictModel):
    margin: float = Field(3.0, ge=0, description="how much of the order the account can take, and its headroom")
    health: float = Field(3.0, ge=0, description="circuit state and recent failure/refusal rate")
    latency: float = Field(1.0, ge=0, description="moving average of the broker's acknowledgement time")
    fees: float = Field(2.0, ge=0, description="brokerage and charges of the order at the account's broker")
    preference: float = Field(1.0, ge=0, description="the account's `routing_preference` from its config")


@dataclass(frozen=True, slots=True)
class Scores:
    margin: float
    health: float
    latency: float
    fees: float
    preference: float
    total: float

    def factors(self) -> dict[str, float]:
        return {
            "margin": self.margin,
            "health": self.health,
            "latency": self.latency,
            "fees": self.fees,
            "preference": self.preference,
        }


def fee_broker(broker: str) -> str:
    """The charges schedule a broker name uses: "zerodha-sim" and "zerodha-paper" pay what Zerodha charges."""
    return broker.split("-", 1)[0]


def order_fee(candidate: Candidate, order: OrderShape, kind: InstrumentKind) -> Decimal:
    broker = fee_broker(candidate.broker)
    return order_charges(broker, kind, order.product, order.side, order.quantity, order.price).total


def _ratio(best: float, own: float) -> float:
    return 1.0 if own <= 0 or best >= own else best / own


def score_all(
    candidates: Sequence[Candidate], order: OrderShape, fees: Sequence[Decimal], weights: RoutingWeights
) -> list[Scores]:
    """Scores of `candidates` (all eligible), in the same order; `fees` are each one's fee for the order."""
    most_free = max((max(Decimal(0), c.free_funds) for c in candidates), default=Decimal(0))
    cheapest = min(fees, default=Decimal(0))
    measured = [c.ack_latency_ms for c in candidates if c.ack_latency_ms > 0]
    fastest = min(measured, default=0.0)
    # An account that has not acknowledged an order yet counts as average: penalising it would keep
    # every order on whichever account happened to be used first.
    typical = sum(measured) / len(measured) if measured else 0.0
    total_weight = weights.margin + weights.health + weights.latency + weights.fees + weights.preference
    out: list[Scores] = []
    for cand, fee in zip(candidates, fees, strict=True):
        fit = min(1.0, cand.capacity / order.quantity)
        headroom = float(max(Decimal(0), cand.free_funds) / most_free) if most_free > 0 else 0.0
        margin = fit * (0.75 + 0.25 * headroom)
        health = (1.0 - cand.error_rate) * (0.5 if cand.circuit is CircuitState.HALF_OPEN else 1.0)
        latency = _ratio(fastest, cand.ack_latency_ms or typical)
        fee_score = _ratio(float(cheapest), float(fee))
        preference = cand.preference
        weighted = (
            weights.margin * margin
            + weights.health * health
            + weights.latency * latency
            + weights.fees * fee_score
            + weights.preference * preference
        )
        total = weighted / total_weight if total_weight > 0 else 0.0
        out.append(Scores(margin, health, latency, fee_score, preference, round(total, 6)))
    return out
