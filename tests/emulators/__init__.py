"""Meter emulators on real pseudo-terminals (see README.md)."""
