"""Fleet: one plan over a shelf of boards at once.

inventory.py (boards.yaml), plan.py (plan.yaml -> work items), options.py (a
plan's run options through the CLI's own run-option parser), gates.py (the
plan's gates on a result), executor.py (a thread per board: check, push
once, run, watch, store), live.py (the live table / plain lines), status.py
(fleet status), report.py (matrix, Markdown, JUnit, HTML), yamlpos.py (YAML
with line numbers for one-line errors)."""
