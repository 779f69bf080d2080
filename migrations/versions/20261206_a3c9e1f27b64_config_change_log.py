"""Config change log: a version counter for the gateway snapshot, bumped by triggers on tenants, quotas, keys and
prices, so a 304 costs one indexed read and a delta names what changed.

On Postgres the trigger takes a transaction-scoped advisory lock before it draws a version, so versions become
visible in the order they were drawn (a gateway that saw version N has seen every change below N), and sends a
``NOTIFY interlock_config`` (delivered at commit) that API processes listen for to keep the version in memory.

Revision ID: a3c9e1f27b64
Revises: 5b1e0c7d9a42
Create Date: 2026-12-06 09:50:00.000000
"""

# ruff: noqa: S608  (SQL built from this file's constants only)

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a3c9e1f27b64"
down_revision: str | Sequence[str] | None = "5b1e0c7d9a42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = (("tenants", "tenant", "id"), ("quotas", "tenant", "tenant_id"), ("api_keys", "key", "id"),
           ("prices", "price", "id"))  # fmt: skip
LOCK_KEY = 0x494C434647  # "ILCFG"

_PG_FUNCTION = f"""
CREATE FUNCTION interlock_config_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_json jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    IF TG_OP = 'DELETE' THEN row_json := to_jsonb(OLD); ELSE row_json := to_jsonb(NEW); END IF;
    INSERT INTO config_changes (kind, object_id) VALUES (TG_ARGV[0], row_json ->> TG_ARGV[1]);
    PERFORM pg_notify('interlock_config', '');
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "config_changes",
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_config_changes")),
    )
    with op.batch_alter_table("config_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_config_changes_changed_at"), ["changed_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table, kind, column in WATCHED:
            op.execute(
                f"CREATE TRIGGER config_change AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION interlock_config_change('{kind}', '{column}')"
            )
    else:
        for table, kind, column in WATCHED:
            for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
                op.execute(
                    f"CREATE TRIGGER config_change_{table}_{event.lower()} AFTER {event} ON {table} FOR EACH ROW "
                    f"BEGIN INSERT INTO config_changes (kind, object_id) VALUES ('{kind}', {row}.{column}); END"
                )
    op.execute("INSERT INTO config_changes (kind, object_id) VALUES ('price', '')")  # version 1: the start


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _, _ in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS config_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS interlock_config_change()")
    else:
        for table, _, _ in WATCHED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS config_change_{table}_{event}")
    with op.batch_alter_table("config_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_config_changes_changed_at"))
    op.drop_table("config_changes")
