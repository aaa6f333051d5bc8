"""Run registry, journal, executor and worker entry."""
