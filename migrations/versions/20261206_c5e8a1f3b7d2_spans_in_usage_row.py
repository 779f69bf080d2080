"""A usage row carries its spans: ``usage.spans``, the event's spans as one JSON array (NULL when it had none).

Ingest wrote each span as a row of ``spans`` (three or four per traced request, each with two index entries): about
a fifth of Postgres's work per ingested batch. A trace's spans are only ever read whole, with their usage row, so
they are now a column of it. Existing spans stay where they are: ``spans`` is kept, unwritten, and a trace reads
it for a row whose ``spans`` is NULL (``interlock.api.crud.traces``), so upgrading moves no data and takes no time;
retention drops its months with the rows'. The downgrade writes the column's spans back into ``spans`` (creating
its missing monthly partitions on Postgres) before dropping the column.

Revision ID: c5e8a1f3b7d2
Revises: 8b4f6d2e0c31
Create Date: 2026-12-06 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e8a1f3b7d2"
down_revision: str | Sequence[str] | None = "8b4f6d2e0c31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SPANS_PARTITIONS = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = 'usage' LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF spans %s', 'spans_' || substr(r.relname, 7), r.bound);
  END LOOP;
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spans", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    columns = "usage_id, started_at, trace_id, position, name, start_ms, duration_ms, attributes"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SPANS_PARTITIONS)
        op.execute(
            f"INSERT INTO spans ({columns}) SELECT u.id, u.started_at, u.trace_id, s.n - 1, s.v->>'name', "  # noqa: S608
            "(s.v->>'start_ms')::float8, (s.v->>'duration_ms')::float8, coalesce(s.v->'attributes', '{}') "
            "FROM usage u CROSS JOIN LATERAL json_array_elements(u.spans) WITH ORDINALITY AS s(v, n) "
            "WHERE u.spans IS NOT NULL ORDER BY u.id, s.n"
        )
    else:
        op.execute(
            f"INSERT INTO spans ({columns}) SELECT u.id, u.started_at, u.trace_id, CAST(s.key AS INTEGER), "  # noqa: S608
            "json_extract(s.value, '$.name'), json_extract(s.value, '$.start_ms'), "
            "json_extract(s.value, '$.duration_ms'), coalesce(json_extract(s.value, '$.attributes'), '{}') "
            "FROM usage u, json_each(u.spans) AS s WHERE u.spans IS NOT NULL ORDER BY u.id, s.key"
        )
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_column("spans")
