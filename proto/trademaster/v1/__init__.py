"""Generated protobuf and gRPC code for the trademaster.v1 API (run `make proto`)."""
