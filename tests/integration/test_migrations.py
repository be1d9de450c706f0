"""Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from evidence_store.db.engine import make_engine
from evidence_store.db.migrate import current_revision, head_revision, upgrade_to_head
from evidence_store.db.tables import metadata


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    upgrade_to_head(engine)  # idempotent
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    assert diff == []
    assert set(inspect(engine).get_table_names()) >= {"clips", "transfers", "audit_events", "tombstones"}
    engine.dispose()


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_postgres_connections_probe_a_dead_link_within_a_minute_unless_the_url_says_otherwise(
    postgres_database,  # type: ignore[no-untyped-def]
) -> None:
    """A station over a WAN (issue 18): its connections carry TCP keepalives and a user timeout, so a
    link that dies mid-query fails in about a minute; the URL's own query overrides each of them."""
    url = postgres_database()
    for query, idle in (("", "30"), ("?keepalives_idle=120", "120")):
        engine = make_engine(url + query)
        with engine.connect() as connection:
            params = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        engine.dispose()
        assert params["keepalives"] == "1" and params["keepalives_idle"] == idle
        assert params["keepalives_count"] == "3" and params["tcp_user_timeout"] == "60000"
