"""The relink journal: which clips, documents and officers changed since the last relink (issue 21).

A relink's links and flags are a function of stored facts: clips (officer, times, clock, status,
media type, late handover, transfer), documents (case, kind, times, need for video), their officers,
the transfer's hand-over time, approved recording exceptions, the links decided by hand, and the
flags and links as stored (a relink puts back what was edited outside it). Reading all of them at a
million clips takes more time than the work (about 6 s of SQL alone), so the database writes down
what changed: a trigger on every table holding such a fact appends the row's clip, document or
officer to `relink_journal`, whoever writes it (the product, a migration, or someone editing the
database by hand). A relink then recomputes the officers and the flags those rows name and nothing
else, and empties the journal in its own transaction (`evidence_store.cases.linking_service`).

The relink's own writes are not journaled (it writes what the facts imply; journaling them would make
the next relink do the work again): on SQLite the link and flag triggers are dropped for the relink's
writes and made again before it commits (`journal_paused`; DDL is transactional there, and SQLite has
one writer, so nobody else writes meanwhile), because a trigger merely present on a table makes
SQLite's bulk inserts into it slower (see `evidence_store.db.triggers`). On PostgreSQL those triggers
skip rows while the transaction has set `evidence.relinking` (`SET LOCAL`): other transactions keep
journaling.

Migration 0015_relink_journal creates the same triggers (written out there, as a migration must not
change with this module). A later SQLite migration that rebuilds one of these tables (Alembic's batch
mode copies it into a new table) drops its triggers with the old table and must make them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

# the columns of `clips` a link or a flag depends on (an update of any other column is not journaled)
CLIP_FACTS = "officer_id, utc_start, utc_end, clock_status, status, late_handover, media_type, transfer_id"

# -- SQLite -------------------------------------------------------------------------------------------

# the triggers on the tables a relink writes: paused for its writes (`journal_paused`)
_SQLITE_WRITTEN = {
    "tr_journal_clip_links_insert": """CREATE TRIGGER tr_journal_clip_links_insert AFTER INSERT ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    "tr_journal_clip_links_update": """CREATE TRIGGER tr_journal_clip_links_update AFTER UPDATE ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    "tr_journal_clip_links_delete": """CREATE TRIGGER tr_journal_clip_links_delete AFTER DELETE ON clip_links
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
END""",
    "tr_journal_flags_insert": """CREATE TRIGGER tr_journal_flags_insert AFTER INSERT ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    "tr_journal_flags_update": """CREATE TRIGGER tr_journal_flags_update AFTER UPDATE ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
    INSERT INTO relink_journal (clip_id, document_id) VALUES (NEW.clip_id, NEW.document_id);
END""",
    "tr_journal_flags_delete": """CREATE TRIGGER tr_journal_flags_delete AFTER DELETE ON compliance_flags
BEGIN
    INSERT INTO relink_journal (clip_id, document_id) VALUES (OLD.clip_id, OLD.document_id);
END""",
}

_SQLITE_FACTS = (
    """CREATE TRIGGER tr_journal_clips_insert AFTER INSERT ON clips
BEGIN
    INSERT INTO relink_journal (clip_id) VALUES (NEW.id);
END""",
    f"""CREATE TRIGGER tr_journal_clips_update AFTER UPDATE OF id, {CLIP_FACTS} ON clips
BEGIN
    INSERT INTO relink_journal (clip_id, officer_id) VALUES (OLD.id, OLD.officer_id);
    INSERT INTO relink_journal (clip_id) VALUES (NEW.id);
END""",  # noqa: S608 (a constant: the column list above)
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
    # a clip's flags read its transfer's start (the hand-over, R1)
    """CREATE TRIGGER tr_journal_transfers_update AFTER UPDATE OF id, started_at ON transfers
BEGIN
    INSERT INTO relink_journal (clip_id) SELECT id FROM clips WHERE transfer_id IN (OLD.id, NEW.id);
END""",
    # an exception names a document, or (no document) every document of its case
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
)

# -- PostgreSQL ---------------------------------------------------------------------------------------

_PG_SKIP = "current_setting('evidence.relinking', true) IS DISTINCT FROM 'on'"

_POSTGRESQL = (
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
    f"""CREATE TRIGGER tr_journal_clip_links AFTER INSERT OR UPDATE OR DELETE ON clip_links
FOR EACH ROW WHEN ({_PG_SKIP}) EXECUTE FUNCTION relink_journal_clip_rows()""",
    f"""CREATE TRIGGER tr_journal_flags AFTER INSERT OR UPDATE OR DELETE ON compliance_flags
FOR EACH ROW WHEN ({_PG_SKIP}) EXECUTE FUNCTION relink_journal_clip_rows()""",
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
    f"""CREATE TRIGGER tr_journal_clips AFTER INSERT OR UPDATE OF id, {CLIP_FACTS} OR DELETE ON clips
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


def journal_triggers(dialect: str) -> tuple[str, ...]:
    """The statements creating the journal's triggers on `dialect` (none on another database: there
    every relink is a full one, see `journal_supported`)."""
    if dialect == "sqlite":
        return (*_SQLITE_FACTS, *_SQLITE_WRITTEN.values())
    if dialect == "postgresql":
        return _POSTGRESQL
    return ()


def journal_supported(dialect: str) -> bool:
    return dialect in ("sqlite", "postgresql")


@contextmanager
def journal_paused(connection: Connection) -> Iterator[None]:
    """Inside a relink's transaction: its own writes to links and flags are not journaled. If anything
    fails, the rollback brings SQLite's dropped triggers back with the rest."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        for name in _SQLITE_WRITTEN:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        yield
        for statement in _SQLITE_WRITTEN.values():
            connection.exec_driver_sql(statement)
    elif dialect == "postgresql":
        connection.exec_driver_sql("SET LOCAL evidence.relinking = 'on'")
        yield
        connection.exec_driver_sql("SET LOCAL evidence.relinking = 'off'")
    else:
        yield
