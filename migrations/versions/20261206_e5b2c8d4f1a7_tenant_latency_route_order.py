"""``tenant_latency_daily``'s primary key in the order a tenant's latency by day and route is read: ``(tenant_id,
bucket, route, bin, model, backend)`` instead of ``(tenant_id, bucket, model, route, backend, bin)``. Summing a
tenant's bins by day and route (the console's default grouping) then reads the index in group order: Postgres
aggregates as it scans, where it hashed every row and sorted the groups before (a year of the heaviest tenant of the
full-scale bench, 193,000 entries: 154 ms → 75 ms of execution). Same rows, same counts.

On Postgres the key's index is rebuilt in place (``ALTER TABLE … DROP CONSTRAINT, ADD PRIMARY KEY``): it holds an
exclusive lock on the table while it builds, about 25 s for the 12 million entries of the full-scale bench, during
which ingest waits. On SQLite the table is copied with the new key (batch mode).

Revision ID: e5b2c8d4f1a7
Revises: e9b2c4d6f1a3
Create Date: 2026-12-06 15:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "e5b2c8d4f1a7"
down_revision: str | Sequence[str] | None = "e9b2c4d6f1a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("tenant_id", "bucket", "model", "route", "backend", "bin")
NEW = ("tenant_id", "bucket", "route", "bin", "model", "backend")


def _key(columns: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE tenant_latency_daily DROP CONSTRAINT pk_tenant_latency_daily, "
            f"ADD CONSTRAINT pk_tenant_latency_daily PRIMARY KEY ({', '.join(columns)}) INCLUDE (latency, ttft)"
        )
        return
    with op.batch_alter_table("tenant_latency_daily", recreate="always") as batch:
        batch.drop_constraint("pk_tenant_latency_daily", type_="primary")
        batch.create_primary_key("pk_tenant_latency_daily", list(columns))


def upgrade() -> None:
    _key(NEW)


def downgrade() -> None:
    _key(OLD)
