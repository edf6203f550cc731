-- Routed orders: what the user asked for, and the decision that turned it into legs. Each leg is an
-- ordinary order pointing at its parent; the parent's status and fills are computed from its legs.
ALTER TABLE orders ADD COLUMN parent_order_id text;
CREATE INDEX orders_parent ON orders (parent_order_id) WHERE parent_order_id IS NOT NULL;

CREATE TABLE routed_orders (
    order_id        text PRIMARY KEY,
    client_order_id text NOT NULL UNIQUE,
    instrument      text NOT NULL,
    side            text NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity > 0),
    product         text NOT NULL,
    order_type      text NOT NULL,
    price           numeric,
    trigger_price   numeric,
    decisions       jsonb NOT NULL,  -- the first routing decision, then one per re-route
    created_at      timestamptz NOT NULL
);
