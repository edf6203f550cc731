"""Routing: which account(s) take an order, split and sliced, and why. Pure: decisions on snapshots."""

from engine.routing.candidates import Candidate, OrderShape, Reserved, candidate, capacity
from engine.routing.circuit import CircuitBreaker
from engine.routing.decision import CandidateReport, NoRoute, RouteDecision, RoutingMode, route, standard
from engine.routing.reservations import Hold, Reservations, claim
from engine.routing.scoring import RoutingWeights, Scores
from engine.routing.split import Leg, Option, fewest_legs, slices, split

__all__ = [
    "Candidate",
    "CandidateReport",
    "CircuitBreaker",
    "Hold",
    "Leg",
    "NoRoute",
    "Option",
    "OrderShape",
    "Reservations",
    "Reserved",
    "RouteDecision",
    "RoutingMode",
    "RoutingWeights",
    "Scores",
    "candidate",
    "capacity",
    "claim",
    "fewest_legs",
    "route",
    "slices",
    "split",
    "standard",
]
