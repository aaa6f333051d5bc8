"""Serial current meters: capture at high rate during a run and align the
current to the inference timeline (see docs/internals.md, Power)."""
