-- Orders as the daemon knows them, the fills that happened to them, and the ordered event log
-- that streams and the ledger read from.

CREATE TABLE orders (
    order_id         text PRIMARY KEY,
    client_order_id  text NOT NULL UNIQUE,
    account_id       text NOT NULL,
    instrument       text NOT NULL,
    side             text NOT NULL,
    quantity         bigint NOT NULL CHECK (quantity > 0),
    product          text NOT NULL,
    order_type       text NOT NULL,
    price            numeric,
    trigger_price    numeric,
    status           text NOT NULL,
    filled_quantity  bigint NOT NULL DEFAULT 0,
    average_price    numeric,
    broker_order_id  text,
    status_message   text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX orders_account_live ON orders (account_id)
    WHERE status NOT IN ('FILLED', 'CANCELLED', 'REJECTED');
CREATE INDEX orders_created ON orders (created_at DESC);

-- seq is the order_events sequence number of the event that announced the fill.
CREATE TABLE fills (
    account_id  text NOT NULL,
    trade_id    text NOT NULL,
    order_id    text NOT NULL REFERENCES orders (order_id),
    instrument  text NOT NULL,
    side        text NOT NULL,
    product     text NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity > 0),
    price       numeric NOT NULL,
    filled_at   timestamptz NOT NULL,
    seq         bigint NOT NULL UNIQUE,
    PRIMARY KEY (account_id, trade_id)
);

CREATE SEQUENCE order_event_seq;
CREATE TABLE order_events (
    seq         bigint PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    account_id  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('order', 'fill')),
    payload     jsonb NOT NULL
);
