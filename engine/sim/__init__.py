"""Simulated market for paper trading: deterministic prices and a per-account exchange."""

from engine.sim.exchange import SimExchange
from engine.sim.prices import PricePath

__all__ = ["PricePath", "SimExchange"]
