"""TradeMaster Orchestrator engine: the daemon and its pure core."""
