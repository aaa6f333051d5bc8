"""edgebench agent: the board side (runs models, samples telemetry and meters)."""

import os

__version__ = "0.1.0"

# gRPC's core writes its own log lines to stderr (a port in use, a bad CA file)
# before our one-line error says the same; quiet unless the user asks for them
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
