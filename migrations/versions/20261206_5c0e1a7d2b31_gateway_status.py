"""Gateway status reports: each gateway's loaded config version, readiness, routes and backends (the console).

Revision ID: 5c0e1a7d2b31
Revises: 37147a8cffa0
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0e1a7d2b31"
down_revision: str | Sequence[str] | None = "37147a8cffa0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_status",
        sa.Column("gateway_id", sa.String(length=128), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config_version", sa.String(length=128), nullable=True),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_gateway_status")),
    )


def downgrade() -> None:
    op.drop_table("gateway_status")
