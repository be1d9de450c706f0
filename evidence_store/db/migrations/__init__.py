"""Alembic migrations, run programmatically by `evidence init` (see `evidence_store.db.migrate`)."""
