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

-- One namespace of client order ids across plain and routed orders. Each insert claims its id here in
-- the same statement; the primary key makes a concurrent claim of the same id wait and then lose.
CREATE TABLE client_order_ids (
    client_order_id text PRIMARY KEY,
    order_id        text NOT NULL
);
INSERT INTO client_order_ids (client_order_id, order_id) SELECT client_order_id, order_id FROM orders;
