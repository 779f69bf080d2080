"""``monthly_spend`` goes: ``tenant_monthly`` (per tenant and UTC month, maintained by the same ingest statement
in the same transaction) has the same key and the same sums, so budgets read the month's spend there and ingest
writes one tenant-per-month table instead of two.

A month ``monthly_spend`` has and ``tenant_monthly`` lacks (usage counted before the rollups existed and dropped by
retention before they were built) is carried over with its requests and cost (the other counters 0), so no
tenant's spend changes.

Revision ID: 8b4f6d2e0c31
Revises: 9c4e2a7b5d18
Create Date: 2026-12-06 13:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8b4f6d2e0c31"
down_revision: str | Sequence[str] | None = "9c4e2a7b5d18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ZEROS = "0, 0, 0, 0, 0"  # errors, input, output, cached, cache-creation tokens


def _bucket_of_month(postgres: bool) -> str:
    """``monthly_spend.month`` (``YYYY-MM``) as a ``tenant_monthly.bucket`` (the month's first moment, UTC)."""
    if postgres:
        return "CAST(m.month || '-01 00:00:00+00' AS TIMESTAMP WITH TIME ZONE)"
    return "m.month || '-01 00:00:00.000000'"  # SQLAlchemy's SQLite DateTime text, UTC


def upgrade() -> None:
    bucket = _bucket_of_month(op.get_bind().dialect.name == "postgresql")
    op.execute(
        "INSERT INTO tenant_monthly (bucket, tenant_id, requests, errors, input_tokens, output_tokens, "  # noqa: S608
        f"cached_tokens, cache_creation_tokens, cost_usd) SELECT {bucket}, m.tenant_id, m.requests, {_ZEROS}, "
        "m.cost_usd FROM monthly_spend m WHERE NOT EXISTS (SELECT 1 FROM tenant_monthly t "
        f"WHERE t.tenant_id = m.tenant_id AND t.bucket = {bucket})"
    )
    op.drop_table("monthly_spend")


def downgrade() -> None:
    op.create_table(
        "monthly_spend",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=20, scale=9), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "month", name=op.f("pk_monthly_spend")),
    )
    if op.get_bind().dialect.name == "postgresql":
        month = "to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM')"
    else:
        month = "substr(bucket, 1, 7)"
    op.execute(
        f"INSERT INTO monthly_spend (tenant_id, month, requests, cost_usd) SELECT tenant_id, {month}, requests, "  # noqa: S608
        "cost_usd FROM tenant_monthly"
    )
