"""Usage dead letters: events the control plane refused for good, with the reason (never counted).

Revision ID: 37147a8cffa0
Revises: f421754f7350
Create Date: 2026-12-06 05:08:42.085560
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "37147a8cffa0"
down_revision: str | Sequence[str] | None = "f421754f7350"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("scope", sa.String(length=320), nullable=False),
        sa.Column("gateway_id", sa.String(length=256), nullable=True),
        sa.Column("idempotency_id", sa.String(length=128), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_dead_letters")),
    )
    with op.batch_alter_table("usage_dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_dead_letters_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_dead_letters_received_at"))

    op.drop_table("usage_dead_letters")
