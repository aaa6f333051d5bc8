"""Test scenarios: a throttling board (thermal.py) and synthetic soak data."""
