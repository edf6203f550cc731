"""Broker adapters: one per broker, all behind the BrokerAdapter interface in `base`."""
