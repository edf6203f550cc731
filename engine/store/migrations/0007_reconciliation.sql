-- Orders reconciliation found at a broker that the daemon did not place (a broker app, another tool).
ALTER TABLE orders ADD COLUMN external boolean NOT NULL DEFAULT false;
