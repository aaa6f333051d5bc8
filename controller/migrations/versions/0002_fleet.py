"""Fleet plans and history: runs gain plan_id/job/board (a fleet result is
tagged with them), the fleet_plans and fleet_items tables, and indexes for
the history and runs filters (model + board over time, newest first).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_runs_created": ["created"],
    "ix_runs_model_sha_created": ["model_sha256", "created"],
    "ix_runs_model_name_created": ["model_name", "created"],
    "ix_runs_board_created": ["board", "created"],
    "ix_runs_agent_created": ["agent", "created"],
    "ix_runs_plan": ["plan_id", "job", "board"],
}


def upgrade() -> None:
    with op.batch_alter_table("runs") as b:
        b.add_column(sa.Column("plan_id", sa.String(64)))
        b.add_column(sa.Column("job", sa.String(255)))
        b.add_column(sa.Column("board", sa.String(255)))
    for name, cols in INDEXES.items():
        op.create_index(name, "runs", cols)
    have = set(sa.inspect(op.get_bind()).get_table_names())
    # a DB the first fleet code opened has these tables already (created without migrations)
    if "fleet_plans" not in have:
        op.create_table(
            "fleet_plans",
            sa.Column("plan_id", sa.String(64), primary_key=True),
            sa.Column("created", sa.Float),
            sa.Column("plan_path", sa.Text),
            sa.Column("status", sa.String(16)),
            sa.Column("plan_json", sa.Text),
        )
    if "fleet_items" not in have:
        op.create_table(
            "fleet_items",
            sa.Column("plan_id", sa.String(64), primary_key=True),
            sa.Column("job", sa.String(255), primary_key=True),
            sa.Column("board", sa.String(255), primary_key=True),
            sa.Column("model", sa.String(255), primary_key=True),
            sa.Column("kind", sa.String(16)),
            sa.Column("status", sa.String(16)),
            sa.Column("reason", sa.Text),
            sa.Column("run_id", sa.String(64)),
            sa.Column("attempts", sa.Integer),
            sa.Column("bytes_pushed", sa.BigInteger),
            sa.Column("started", sa.Float),
            sa.Column("ended", sa.Float),
            sa.Column("gates_json", sa.Text),
        )


def downgrade() -> None:
    op.drop_table("fleet_items")
    op.drop_table("fleet_plans")
    for name in INDEXES:
        op.drop_index(name, "runs")
    with op.batch_alter_table("runs") as b:
        b.drop_column("board")
        b.drop_column("job")
        b.drop_column("plan_id")
