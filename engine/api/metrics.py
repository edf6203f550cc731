"""The daemon's Prometheus metrics, served on server.metrics_listen."""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

ORDERS = Counter("trademaster_orders_total", "PlaceOrder outcomes", ["account", "outcome"])
RPC_LATENCY = Histogram(
    "trademaster_rpc_duration_seconds", "gRPC handling time", ["method", "code"], buckets=_LATENCY_BUCKETS
)
ACTOR_CALL = Histogram(
    "trademaster_actor_call_duration_seconds", "Ray actor call round trip", ["actor", "method"],
    buckets=_LATENCY_BUCKETS,
)  # fmt: skip
OPEN_STREAMS = Gauge("trademaster_open_streams", "Server streams currently open", ["method"])
EVENTS_PUBLISHED = Counter("trademaster_order_events_total", "Order events read from the event log")
STREAMS_CUT_OFF = Counter(
    "trademaster_streams_cut_off_total",
    "Event streams ended with RESOURCE_EXHAUSTED: too far behind (lag) or their client stopped reading (blocked)",
    ["log", "reason"],
)
ROUTED_LEGS = Counter(
    "trademaster_routed_orders_total", "Orders sent to each account, by routing mode", ["account", "mode"]
)
CIRCUIT_STATE = Gauge("trademaster_circuit_state", "Each account's circuit: 0 closed, 1 half-open, 2 open", ["account"])
ORDER_QUEUE = Gauge("trademaster_order_queue_depth", "Orders waiting for their pacing turn", ["account"])
BROKER_429 = Gauge(
    "trademaster_broker_rate_limited_total", "429 answers an account received since it started (expect 0)", ["account"]
)
