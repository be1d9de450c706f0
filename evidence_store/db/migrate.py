"""Bring a database to the newest schema with Alembic (idempotent), and read where a database stands.

Reading the revision needs no Alembic: every command opens the station and checks its schema, and
importing Alembic (with Mako) costs more than the rest of a light command's start-up (issue 21). The
head is therefore named here; a test checks it against Alembic's own view of the migrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# the newest migration in migrations/versions (tests/unit/test_migration_head.py keeps it true)
HEAD_REVISION = "0015_relink_journal"
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    from alembic.config import Config  # lazy: see the module docstring

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine: Engine) -> None:
    from alembic import command  # lazy: see the module docstring

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, as Alembic records it; None for a database it never touched."""
    from sqlalchemy import text  # lazy: start-up (sqlite_status reads HEAD_REVISION without SQLAlchemy)
    from sqlalchemy.exc import DatabaseError  # lazy: as above

    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, VERSION_TABLE):
            return None
        try:
            found = connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
        except DatabaseError:
            return None
        return None if found is None else str(found)


def head_revision() -> str:
    return HEAD_REVISION
