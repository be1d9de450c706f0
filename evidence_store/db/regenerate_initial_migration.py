"""Developer tool: rewrite migration 0001 from the tables (only while no release has shipped it).

.venv/bin/python -m evidence_store.db.regenerate_initial_migration
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from evidence_store.db.engine import make_engine
from evidence_store.db.migrate import MIGRATIONS_DIR, alembic_config


def main() -> None:
    for old in (MIGRATIONS_DIR / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{Path(directory) / 'empty.db'}")
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
        engine.dispose()


if __name__ == "__main__":
    main()
