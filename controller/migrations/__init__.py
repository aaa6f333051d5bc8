"""Alembic migrations of the results DB (controller/db.py runs them on open).

    0001  today's schema before fleets: the runs table
    0002  fleet: runs.plan_id/job/board, fleet_plans, fleet_items, history indexes

Run by hand: ``alembic -c controller/migrations/alembic.ini -x url=URL upgrade head``."""
