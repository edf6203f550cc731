-- The day's PnL curve (PortfolioService.GetPnlHistory): each account's realised and unrealised PnL, sampled
-- every portfolio.pnl_sample_seconds. Kept in the database so the dashboard's chart survives a restart.
CREATE TABLE pnl_samples (
    sampled_at timestamptz NOT NULL,
    account_id text NOT NULL,
    realised numeric NOT NULL,
    unrealised numeric NOT NULL,
    PRIMARY KEY (sampled_at, account_id)
);
