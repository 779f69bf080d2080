"""Tenant quotas carry a priority (critical, standard, sheddable): the tenant's class in a saturated self-hosted
pool's fair queue, where its Route sets none. Existing quotas are standard, what every request was before.

Revision ID: 6d2f1b3e8c54
Revises: 6d2f4a8b1c53
Create Date: 2026-12-06 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6d2f1b3e8c54"
down_revision: str | Sequence[str] | None = "6d2f4a8b1c53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quotas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.String(length=16), server_default="standard", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("quotas", schema=None) as batch_op:
        batch_op.drop_column("priority")
