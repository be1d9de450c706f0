"""The schema head named in `db.migrate` (read without Alembic at every start) is Alembic's own head."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from evidence_store.db.migrate import HEAD_REVISION, alembic_config


def test_the_named_head_is_the_newest_migration() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD_REVISION], (
        f"a migration was added: set db.migrate.HEAD_REVISION to {script.get_current_head()}"
    )
