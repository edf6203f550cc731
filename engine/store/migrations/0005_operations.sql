-- What the API changes over the config file: account groups, quantity multipliers and trading states.

-- A group set through the API replaces the config file's group of that name. A deleted group keeps its row
-- with deleted = true, so a group of that name in the config file stays gone after a restart.
CREATE TABLE account_groups (
    name     text PRIMARY KEY,
    accounts text[] NOT NULL,
    deleted  boolean NOT NULL DEFAULT false,
    set_at   timestamptz NOT NULL DEFAULT now()
);

-- Replaces the account's configured multiplier.
CREATE TABLE account_multipliers (
    account    text PRIMARY KEY,
    multiplier numeric NOT NULL CHECK (multiplier >= 0 AND multiplier <= 1000),
    set_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per scope ever set; ACTIVE rows remain so the last lift is remembered with who made it.
-- floor is the least restrictive state a non-admin may set on the scope (what an admin last set).
CREATE TABLE trading_states (
    scope_kind text NOT NULL CHECK (scope_kind IN ('GLOBAL', 'GROUP', 'ACCOUNT')),
    scope_name text NOT NULL,
    state      text NOT NULL CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    floor      text NOT NULL CHECK (floor IN ('ACTIVE', 'REDUCING', 'HALTED')),
    reason     text NOT NULL,
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL,
    PRIMARY KEY (scope_kind, scope_name)
);
