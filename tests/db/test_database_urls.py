"""``DATABASE_URL`` the way managed Postgres services hand it out: libpq's query parameters (``sslmode``,
``application_name``, ``connect_timeout``, ``options``) and the ``postgres://`` scheme, against real servers: the
shared one (no TLS) and a private one with TLS on (a certificate from ``trustme``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.faults.services import private_postgres
from interlock.db.migrate import migrate
from interlock.db.session import create_engine, libpq_connect_args
from tests.db.support import ADMIN_DSN


async def _ask(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


def test_libpq_parameters_become_asyncpg_arguments() -> None:
    url, args = libpq_connect_args(
        make_url(
            "postgresql+asyncpg://u:p@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem"
            "&application_name=interlock&connect_timeout=10&options=-c%20search_path%3Dil%20-c%20work_mem%3D8MB"
        )
    )
    assert url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@db.example:6543/app"
    assert args == {
        "dsn": "postgresql://?sslmode=verify-full&sslrootcert=%2Fca.pem",
        "timeout": 10.0,
        "server_settings": {"application_name": "interlock", "search_path": "il", "work_mem": "8MB"},
    }
    assert libpq_connect_args(make_url("sqlite+aiosqlite:///x.db?mode=ro"))[1] == {}


async def test_the_libpq_form_connects_to_the_shared_server() -> None:
    base = ADMIN_DSN.removeprefix("postgresql://")
    url = f"postgres://{base}?sslmode=prefer&application_name=il-test&connect_timeout=5&options=-c%20search_path%3Dx"
    rows = await _ask(url, "SELECT current_setting('application_name'), current_setting('search_path')")
    assert rows == [("il-test", "x")]
    with pytest.raises(ConnectionError, match="rejected SSL upgrade"):  # sslmode reaches asyncpg: this one has no TLS
        await _ask(f"postgresql://{base}?sslmode=require", "SELECT 1")


async def test_sslmode_require_speaks_tls_and_the_migrations_run(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    cert_file, key_file, ca_file = tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    async with private_postgres(ssl_files=(cert_file, key_file)) as pg:
        rows = await _ask(f"{pg.url}?sslmode=require", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert rows == [(True,)]
        verified = f"{pg.url}?sslmode=verify-full&sslrootcert={ca_file}"
        await migrate(verified)
        assert await _ask(verified, "SELECT count(*) FROM usage_dead_letters") == [(0,)]
        with pytest.raises(Exception, match=r"(?i)certificate"):  # verify-full really verifies: the system CAs fail
            await _ask(f"{pg.url}?sslmode=verify-full", "SELECT 1")
