"""Usage rows say whether the request was spilled over from a saturated self-hosted pool to the route's target.

Revision ID: 5b1e0c2d9a47
Revises: a3c9e1f27b64
Create Date: 2026-12-06 09:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c2d9a47"
down_revision: str | Sequence[str] | None = "a3c9e1f27b64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spilled_over", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_column("spilled_over")
