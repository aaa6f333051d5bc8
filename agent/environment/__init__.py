"""The board state that skews benchmark numbers: probe (read), procs (other processes), pin (--pin-clocks)."""
