"""The schema before fleets: one runs table (what controller/db.py created
with metadata.create_all). A DB from that code has no alembic_version table;
controller/db.py stamps it 0001 and upgrades it in place.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(255)),
        sa.Column("kind", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("model_name", sa.String(255)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("created", sa.Float),
        sa.Column("throughput_ips", sa.Float),
        sa.Column("p50_ms", sa.Float),
        sa.Column("p99_ms", sa.Float),
        sa.Column("fallback", sa.Boolean),
        sa.Column("gates_passed", sa.Boolean),
        sa.Column("result_json", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("runs")
