"""Thin clients of the gRPC API: the CLI, the Python SDK, and (in web/) the dashboard."""
