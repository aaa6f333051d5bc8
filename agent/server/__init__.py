"""gRPC server: servicer, auth, assembly, metrics."""
