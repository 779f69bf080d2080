"""Spans lose their ``trace_id`` index: nothing reads spans by trace id (a trace is found by ``usage.trace_id``,
then its spans by ``usage_id``), and with random trace ids every ingested span inserted into a random page of it:
about a tenth of Postgres's work per ingested batch.

Revision ID: 9c4e2a7b5d18
Revises: 7a3e5c1d9b20
Create Date: 2026-12-06 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "9c4e2a7b5d18"
down_revision: str | Sequence[str] | None = "7a3e5c1d9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_spans_trace_id", table_name="spans")


def downgrade() -> None:
    op.create_index("ix_spans_trace_id", "spans", ["trace_id"], unique=False)
