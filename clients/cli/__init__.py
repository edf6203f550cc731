"""The `trademaster` command."""
