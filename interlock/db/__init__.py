"""The control plane's database: ORM models, engine and session factory, migrations (``interlock.db.migrate``,
imported on demand: Alembic is only needed to migrate)."""

from interlock.db.base import Base
from interlock.db.session import create_engine, create_sessionmaker, normalize_url

__all__ = ["Base", "create_engine", "create_sessionmaker", "normalize_url"]
