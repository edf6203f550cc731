"""Broker request limits the simulator enforces; the facts live with the adapters' pacing."""

from engine.brokers.pacing import KITE_LIMITS, UPSTOX_LIMITS, RateLimits, Window

__all__ = ["KITE_LIMITS", "UPSTOX_LIMITS", "RateLimits", "Window"]
