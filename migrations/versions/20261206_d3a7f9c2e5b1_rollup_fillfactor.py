"""The rollups ingest updates in place get room on their pages for the updated rows (Postgres: ``fillfactor``
70, ``interlock.db.rollups.FILLFACTOR``), so an update stays on its page and writes no index entry (a HOT update)
instead of a new entry in each of the table's indexes. It applies to pages written from now on: the rows of the
buckets ingest still adds to. Nothing to do on SQLite.

Revision ID: d3a7f9c2e5b1
Revises: c5e8a1f3b7d2
Create Date: 2026-12-06 15:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "d3a7f9c2e5b1"
down_revision: str | Sequence[str] | None = "c5e8a1f3b7d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    *(f"fleet_{dimension}_{grain}" for dimension in ("backend", "route", "model") for grain in ("hourly", "daily")),
    "fleet_hourly",
    "fleet_daily",
    "tenant_daily",
    "tenant_monthly",
    "usage_hourly",
    "usage_daily",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f'ALTER TABLE "{table}" SET (fillfactor = 70)')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f'ALTER TABLE "{table}" RESET (fillfactor)')
