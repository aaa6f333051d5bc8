"""Content-addressed artifact store (sha256)."""
