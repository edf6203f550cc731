-- Appends order events in one round trip instead of three: the lock that numbers events in commit order,
-- the insert, and the notification of the last number. Held until the caller's transaction ends, the lock
-- makes a reader that has seen event N see every event below N once it is visible.
CREATE FUNCTION append_order_events(p_account text, p_kinds text[], p_payloads text[])
RETURNS TABLE (seq bigint, at timestamptz, account_id text, kind text, payload text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(2051866626);  -- 0x7A4D0002, the order event lock
    RETURN QUERY
        INSERT INTO order_events (seq, account_id, kind, payload)
        SELECT nextval('order_event_seq'), p_account, t.k, t.p::jsonb
        FROM unnest(p_kinds, p_payloads) WITH ORDINALITY AS t(k, p, n)
        ORDER BY t.n
        RETURNING seq, at, account_id, kind, payload::text;
    PERFORM pg_notify('order_events', currval('order_event_seq')::text);
END
$$;
