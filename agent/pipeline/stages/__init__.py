"""One module per stage family; ``build(stage_dict, ctx)`` in base.py picks one
by the stage's kind."""
