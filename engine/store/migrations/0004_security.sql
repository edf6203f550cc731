-- Users, their API tokens and accounts, and the tamper-evident audit trail.
CREATE TABLE users (
    name       text PRIMARY KEY,
    role       text NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which accounts a user sees and trades; admins see every account whatever this holds.
CREATE TABLE user_accounts (
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    account   text NOT NULL,
    PRIMARY KEY (user_name, account)
);

-- A token is shown once; only an argon2 hash of its secret is kept.
CREATE TABLE api_tokens (
    token_id    text PRIMARY KEY,
    user_name   text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

-- Who placed a routed order, so a parent whose legs all failed still has an owner.
ALTER TABLE routed_orders ADD COLUMN placed_by text NOT NULL DEFAULT '';

-- Each row carries the previous row's hash (engine/security/audit_chain.py). The head row is updated
-- with every append, so deleting the newest rows is caught too.
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    peer      text NOT NULL,
    outcome   text NOT NULL,
    detail    text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL
);
CREATE TABLE audit_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL,
    hash     text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));
