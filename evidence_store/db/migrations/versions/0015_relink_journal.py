"""relink journal: the clips, documents and officers whose facts changed since the last relink (issue 21)

`relink_journal` is appended to by triggers on every table holding a fact a link or a flag depends on
(clips, documents, document_officers, clip_links, compliance_flags, transfers, recording_exceptions),
whoever writes the row; a relink recomputes what it names and empties it. `relink_state` keeps what
the last relink computed under (tolerance, filing window, version of the rules, R8 clock): with none
(a station upgraded to this revision), the next relink recomputes everything.
evidence_store/db/relink_journal.py has the same statements (written out here, as a migration must not
change with that module) and says why the relink's own writes are not journaled.

Revision ID: 0015_relink_journal
Revises: 0014_cold_search
Create Date: 2026-12-05 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0015_relink_journal"
down_revision = "0014_cold_search"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER tr_journal_clips_insert AFTER INSERT ON clips
BEGIN
    INSERT INTO relink_journal (clip_id) VALUES (NEW.id);
END""",
    """CREATE TRIGGER tr_journal_clips_update AFTER UPDATE OF id, officer_id, utc_start, utc_end, clock_status, status, late_handover, media_type, transfer_id ON clips
BEGIN
    INSERT INTO relink_journal (clip_id, officer_id) VALUES (OLD.id, OLD.officer_id);
    INSERT INTO relink_journal (clip_id) VALUES (NEW.id);
END""",
    """CREATE TRIGGER tr_journal_clips_delete AFTER DELETE ON clips
BEGIN
    INSERT INTO relink_journal (clip_id, officer_id) VALUES (OLD.id, OLD.officer_id);
END""",
    """CREATE TRIGGER tr_journal_documents_insert AFTER INSERT ON documents
BEGIN
    INSERT INTO relink_journal (document_id) VALUES (NEW.id);
END""",
    """CREATE TRIGGER tr_journal_documents_update AFTER UPDATE ON documents
BEGIN
    INSERT INTO relink_journal (document_id) VALUES (OLD.id);
    INSERT INTO relink_journal (document_id) VALUES (NEW.id);
END""",
    """CREATE TRIGGER tr_journal_documents_delete AFTER DELETE ON documents
BEGIN
    INSERT INTO relink_journal (document_id) VALUES (OLD.id);
END""",
    """CREATE TRIGGER tr_journal_document_officers_insert AFTER INSERT ON document_officers
BEGIN
    INSERT INTO relink_journal (document_id, officer_id) VALUES (NEW.document_id, NEW.officer_id);
END""",
    """CREATE TRIGGER tr_journal_document_officers_update AFTER UPDATE ON document_officers
BEGIN
    INSERT INTO relink_journal (document_id, officer_id) VALUES (OLD.document_id, OLD.officer_id);
    INSERT INTO relink_journal (document_id, officer_id) VALUES (NEW.document_id, NEW.officer_id);
END""",
    """CREATE TRIGGER tr_journal_document_officers_delete AFTER DELETE ON document_officers
BEGIN
    INSERT INTO relink_journal (document_id, officer_id) VALUES (OLD.document_id, OLD.officer_id);
END""",
    """CREATE TRIGGER tr_journal_transfers_update AFTER UPDATE OF id, started_at ON transfers
BEGIN
    INSERT INTO relink_journal (clip_id) SELECT id FROM clips WHERE transfer_id IN (OLD.id, NEW.id);
END""",
    """CREATE TRIGGER tr_journal_exceptions_insert AFTER INSERT ON recording_exceptions
BEGIN
    INSERT INTO relink_journal (document_id) SELECT id FROM documents
    WHERE id = NEW.document_id OR (NEW.document_id IS NULL AND case_id = NEW.case_id);
END""",
    """CREATE TRIGGER tr_journal_exceptions_update AFTER UPDATE ON recording_exceptions
BEGIN
    INSERT INTO relink_journal (document_id) SELECT id FROM documents
    WHERE id IN (OLD.document_id, NEW.document_id)
       OR (OLD.document_id IS NULL AND case_id = OLD.case_id)
       OR (NEW.document_id IS NULL AND case_id = NEW.case_id);
END""",
    """CREATE TRIGGER tr_journal_exceptions_delete AFTER DELETE ON recording_exceptions
BEGIN
    INSERT INTO relink_journal (document_id) SELECT id FROM documents
    WHERE id = OLD.document_id OR (OLD.document_id IS NULL AND case_id = OLD.case_id);
END""",
    """CREATE TRIGGER tr_journal_clip_links_insert AFTER INSERT ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    """CREATE TRIGGER tr_journal_clip_links_update AFTER UPDATE ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    """CREATE TRIGGER tr_journal_clip_links_delete AFTER DELETE ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
END""",
    """CREATE TRIGGER tr_journal_flags_insert AFTER INSERT ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    """CREATE TRIGGER tr_journal_flags_update AFTER UPDATE ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    """CREATE TRIGGER tr_journal_flags_delete AFTER DELETE ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
END""",
)

POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION relink_journal_clip_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_clip_links AFTER INSERT OR UPDATE OR DELETE ON clip_links
FOR EACH ROW WHEN (current_setting('evidence.relinking', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION relink_journal_clip_rows()""",
    """CREATE TRIGGER tr_journal_flags AFTER INSERT OR UPDATE OR DELETE ON compliance_flags
FOR EACH ROW WHEN (current_setting('evidence.relinking', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION relink_journal_clip_rows()""",
    """CREATE FUNCTION relink_journal_clips() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO relink_journal (clip_id, officer_id) VALUES (OLD.id, OLD.officer_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO relink_journal (clip_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_clips AFTER INSERT OR UPDATE OF id, officer_id, utc_start, utc_end, clock_status, status, late_handover, media_type, transfer_id OR DELETE ON clips
FOR EACH ROW EXECUTE FUNCTION relink_journal_clips()""",
    """CREATE FUNCTION relink_journal_documents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO relink_journal (document_id) VALUES (OLD.id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO relink_journal (document_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_documents AFTER INSERT OR UPDATE OR DELETE ON documents
FOR EACH ROW EXECUTE FUNCTION relink_journal_documents()""",
    """CREATE FUNCTION relink_journal_document_officers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO relink_journal (document_id, officer_id) VALUES (OLD.document_id, OLD.officer_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO relink_journal (document_id, officer_id) VALUES (NEW.document_id, NEW.officer_id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_document_officers AFTER INSERT OR UPDATE OR DELETE ON document_officers
FOR EACH ROW EXECUTE FUNCTION relink_journal_document_officers()""",
    """CREATE FUNCTION relink_journal_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO relink_journal (clip_id) SELECT id FROM clips WHERE transfer_id IN (OLD.id, NEW.id);
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_transfers AFTER UPDATE OF id, started_at ON transfers
FOR EACH ROW EXECUTE FUNCTION relink_journal_transfers()""",
    """CREATE FUNCTION relink_journal_exceptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO relink_journal (document_id) SELECT id FROM documents
        WHERE id = OLD.document_id OR (OLD.document_id IS NULL AND case_id = OLD.case_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO relink_journal (document_id) SELECT id FROM documents
        WHERE id = NEW.document_id OR (NEW.document_id IS NULL AND case_id = NEW.case_id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_journal_exceptions AFTER INSERT OR UPDATE OR DELETE ON recording_exceptions
FOR EACH ROW EXECUTE FUNCTION relink_journal_exceptions()""",
)

SQLITE_TRIGGER_NAMES = (
    "tr_journal_clips_insert",
    "tr_journal_clips_update",
    "tr_journal_clips_delete",
    "tr_journal_documents_insert",
    "tr_journal_documents_update",
    "tr_journal_documents_delete",
    "tr_journal_document_officers_insert",
    "tr_journal_document_officers_update",
    "tr_journal_document_officers_delete",
    "tr_journal_transfers_update",
    "tr_journal_exceptions_insert",
    "tr_journal_exceptions_update",
    "tr_journal_exceptions_delete",
    "tr_journal_clip_links_insert",
    "tr_journal_clip_links_update",
    "tr_journal_clip_links_delete",
    "tr_journal_flags_insert",
    "tr_journal_flags_update",
    "tr_journal_flags_delete",
)
POSTGRESQL_TRIGGER_TABLES = (
    ("tr_journal_clip_links", "clip_links"),
    ("tr_journal_flags", "compliance_flags"),
    ("tr_journal_clips", "clips"),
    ("tr_journal_documents", "documents"),
    ("tr_journal_document_officers", "document_officers"),
    ("tr_journal_transfers", "transfers"),
    ("tr_journal_exceptions", "recording_exceptions"),
)
POSTGRESQL_FUNCTIONS = (
    "relink_journal_clip_rows",
    "relink_journal_clips",
    "relink_journal_documents",
    "relink_journal_document_officers",
    "relink_journal_transfers",
    "relink_journal_exceptions",
)


def upgrade() -> None:
    op.create_table(
        "relink_journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=True),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relink_journal")),
    )
    op.create_table(
        "relink_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tolerance_s", sa.Float(), nullable=False),
        sa.Column("filing_window_days", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.String(length=100), nullable=False),
        sa.Column("relinked_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relink_state")),
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRESQL_TRIGGERS}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    elif dialect == "postgresql":
        for name, table in POSTGRESQL_TRIGGER_TABLES:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for function in POSTGRESQL_FUNCTIONS:
            op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("relink_state")
    op.drop_table("relink_journal")
