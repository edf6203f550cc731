"""Python SDK for strategy bots: typed stubs for every service over one channel."""

from clients.python.client import DEFAULT_SERVER, Client, TlsOptions

__all__ = ["DEFAULT_SERVER", "Client", "TlsOptions"]
