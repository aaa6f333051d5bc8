"""``edgebench bench MODEL --sweep AXIS=V1,V2 ...``: one run per point of the
cartesian product, through the session layer, resumable, reported as one
table and one plot (axes, runner, record, figures, pareto, report, plot)."""
