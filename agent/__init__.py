"""edgebench agent: the board side (runs models, samples telemetry and meters)."""

__version__ = "0.1.0"
