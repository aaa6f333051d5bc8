"""Alembic environment: the connection comes from controller/db.py
(``config.attributes["connection"]``), or from ``-x url=URL`` by hand."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        from controller.db import default_url

        url = default_url()
    engine = sa.create_engine(url)
    with engine.begin() as c:
        context.configure(connection=c, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
