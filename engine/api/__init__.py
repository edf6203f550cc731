"""gRPC servicers and interceptors: proto <-> domain, errors, metrics, event streaming."""
