-- One broker login session per account, so a restart keeps trading without a new login.
CREATE TABLE broker_sessions (
    account      text PRIMARY KEY,
    user_id      text NOT NULL,
    access_token text NOT NULL,
    expires_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
