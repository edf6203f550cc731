-- Strategies the daemon runs: their parameters, the pure logic's state, and an outbox of commands decided
-- but not yet known to be executed. State, outbox and event cursor change together in one statement, so a
-- crash leaves either the old decision or the new one, never half of it.
CREATE TABLE strategies (
    strategy_id        text PRIMARY KEY,
    client_strategy_id text NOT NULL UNIQUE,
    owner              text NOT NULL,
    kind               text NOT NULL,
    name               text NOT NULL DEFAULT '',
    params             jsonb NOT NULL,
    accounts           text[] NOT NULL,           -- every account it may touch, for who may see it
    state              jsonb,                     -- NULL until the logic has started
    status             text NOT NULL CHECK (status IN ('RUNNING', 'PAUSED', 'STOPPED', 'COMPLETED', 'FAILED')),
    message            text NOT NULL DEFAULT '',
    outbox             jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{"id": n, "type": ..., "data": ...}]
    commands_issued    bigint NOT NULL DEFAULT 0,  -- the last command id handed out
    event_cursor       bigint NOT NULL,            -- order events up to here have been fed to the logic
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX strategies_live ON strategies (status) WHERE status IN ('RUNNING', 'PAUSED');

-- The orders each strategy placed, by the key the logic gave them (client_order_id "<strategy id>-<key>").
CREATE TABLE strategy_orders (
    strategy_id text NOT NULL REFERENCES strategies (strategy_id),
    key         text NOT NULL,
    order_id    text NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (strategy_id, key)
);

-- What strategies did, for StreamStrategyEvents; numbered like order_events (under an advisory lock, so a
-- reader that has seen N has seen everything below N).
CREATE SEQUENCE strategy_event_seq;
CREATE TABLE strategy_events (
    seq         bigint PRIMARY KEY,
    strategy_id text NOT NULL REFERENCES strategies (strategy_id),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL,
    message     text NOT NULL,
    order_id    text NOT NULL DEFAULT '',
    status      text NOT NULL
);
