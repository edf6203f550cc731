"""PostgreSQL: the durable truth. Schema migrations, orders, fills and the order event log."""
