"""edgebench pipeline on the host: load.py (PIPELINE.yaml -> stages with local
files), run.py (push, the run spec, the run), report.py (terminal text)."""
