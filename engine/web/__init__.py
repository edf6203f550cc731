"""The browser's way in: the dashboard's files and a gRPC-web proxy to the daemon's own gRPC port."""
