-- What an account reads of its history when it starts: the broker ids of its recent orders and the trade ids of
-- its recent fills and of its live orders' fills (engine/account.py). Without these each read scanned all orders
-- or all of the account's fills, so a restart slowed as the history grew.
CREATE INDEX orders_account_updated ON orders (account_id, updated_at) INCLUDE (broker_order_id);
CREATE INDEX fills_account_filled ON fills (account_id, filled_at);
CREATE INDEX fills_order ON fills (order_id);
