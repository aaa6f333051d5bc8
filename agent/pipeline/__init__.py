"""Application pipelines (issue 24): frames through pre-processing, models and
post-processing stages at the camera's rate, timed stage by stage.
spec.py (the wire form, checked without numpy), stages/ (one module per stage
family), runner.py (the worker's paced run), summary.py (frames -> pipeline{})."""
