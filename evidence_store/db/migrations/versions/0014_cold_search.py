"""cold search: the open flags of a kind in their clips' order (issue 21 item 5)

`compliance_flags.clip_start` holds the start of the flag's clip (`clips.utc_start`), filled here for
the flags there are and from then on by the flag refresh (with each flag it opens; a relink puts back a
value written or edited outside it) and by triggers when a flag's clip or a clip's start changes
(evidence_store/db/triggers.py has the same statements; no insert trigger: it slowed every flag insert).
The partial index `ix_compliance_flags_open_kind_start` (kind, clip_start, clip_id) of the open flags
of clips then gives a flag search its page from one short index range, in the search's order, where it
walked the start index of every clip and probed each clip's flags (a random read per clip when cold).

0012's partial indexes of open links and open flags are made again with the column their condition
tests (always NULL in them): SQLite counts an index as covering only when it holds every column a query
names, the condition's too, so it read the link or flag row behind every probe (PostgreSQL did not).

A search for any open flag reads `ix_compliance_flags_open_start` (clip_start, clip_id) the same way.
A search for late handovers (a fact kept on the clip) gets `ix_clips_late_start_id`, a partial index of
the late clips in the search's order.

Upgrade cost at 1M clips, 157,000 flags and 200,000 links: one UPDATE of the flags that name a clip,
the two new flag indexes, the three remade link and flag indexes, and one read of `clips` for the partial
index of late clips (its 2 % of rows): 2.0 s on SQLite and 6.3 s on PostgreSQL (the bench's 1M-clip
station, a 2-CPU machine at load 3; PostgreSQL then wants a VACUUM, which autovacuum does, for its
index-only scans of the flags).

Revision ID: 0014_cold_search
Revises: 0013_relink_indexes
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0014_cold_search"
down_revision = "0013_relink_indexes"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER tr_compliance_flags_clip_moved AFTER UPDATE OF clip_id ON compliance_flags
FOR EACH ROW
BEGIN
    UPDATE compliance_flags SET clip_start = (SELECT utc_start FROM clips WHERE clips.id = NEW.clip_id)
    WHERE id = NEW.id;
END""",
    """CREATE TRIGGER tr_clips_start_to_flags AFTER UPDATE OF utc_start ON clips
FOR EACH ROW
BEGIN
    UPDATE compliance_flags SET clip_start = NEW.utc_start WHERE clip_id = NEW.id;
END""",
)
POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION compliance_flags_clip_start() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.clip_start := (SELECT utc_start FROM clips WHERE clips.id = NEW.clip_id);
    RETURN NEW;
END $$""",
    """CREATE TRIGGER tr_compliance_flags_clip_moved BEFORE UPDATE OF clip_id ON compliance_flags
FOR EACH ROW EXECUTE FUNCTION compliance_flags_clip_start()""",
    """CREATE FUNCTION clips_start_to_flags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE compliance_flags SET clip_start = NEW.utc_start WHERE clip_id = NEW.id;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_clips_start_to_flags AFTER UPDATE OF utc_start ON clips
FOR EACH ROW WHEN (OLD.utc_start IS DISTINCT FROM NEW.utc_start) EXECUTE FUNCTION clips_start_to_flags()""",
)


# 0012's partial indexes, again with the column their condition tests: SQLite counts an index as covering
# only when it holds every column a query names, the condition's too (PostgreSQL did without)
COVERING = (
    ("ix_clip_links_open_clip", "clip_links", ["clip_id", "case_id"], "removed_at"),
    ("ix_clip_links_open_case", "clip_links", ["case_id", "clip_id"], "removed_at"),
    ("ix_compliance_flags_open_clip", "compliance_flags", ["clip_id", "kind"], "cleared_at"),
)


def _partial(name: str, table: str, columns: list[str], condition: str) -> None:
    where = sa.text(condition)
    op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, columns, tested in COVERING:
        op.drop_index(name, table_name=table)
        _partial(name, table, [*columns, tested], f"{tested} IS NULL")
    with op.batch_alter_table("compliance_flags") as batch:
        batch.add_column(
            sa.Column("clip_start", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE compliance_flags SET clip_start = "
        "(SELECT utc_start FROM clips WHERE clips.id = compliance_flags.clip_id) WHERE clip_id IS NOT NULL"
    )
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRESQL_TRIGGERS}.get(dialect, ()):
        op.execute(statement)
    _partial(
        "ix_compliance_flags_open_kind_start",
        "compliance_flags",
        ["kind", "clip_start", "clip_id", "cleared_at"],
        "cleared_at IS NULL AND clip_id IS NOT NULL",
    )
    _partial(
        "ix_compliance_flags_open_start",
        "compliance_flags",
        ["clip_start", "clip_id", "cleared_at"],
        "cleared_at IS NULL AND clip_id IS NOT NULL",
    )
    op.create_index(
        "ix_clips_late_start_id",
        "clips",
        ["utc_start", "id", "late_handover"],
        sqlite_where=sa.text("late_handover IS 1"),
        postgresql_where=sa.text("late_handover IS true"),
    )
    if dialect == "postgresql":
        op.execute("ANALYZE compliance_flags")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_clips_late_start_id", table_name="clips")
    op.drop_index("ix_compliance_flags_open_start", table_name="compliance_flags")
    op.drop_index("ix_compliance_flags_open_kind_start", table_name="compliance_flags")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER tr_clips_start_to_flags ON clips")
        op.execute("DROP TRIGGER tr_compliance_flags_clip_moved ON compliance_flags")
        op.execute("DROP FUNCTION clips_start_to_flags()")
        op.execute("DROP FUNCTION compliance_flags_clip_start()")
    elif dialect == "sqlite":
        for name in (
            "tr_clips_start_to_flags",
            "tr_compliance_flags_clip_moved",
        ):
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("compliance_flags") as batch:
        batch.drop_column("clip_start")
    for name, table, columns, tested in COVERING:
        op.drop_index(name, table_name=table)
        _partial(name, table, columns, f"{tested} IS NULL")
