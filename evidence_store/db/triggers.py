"""Triggers that keep a copied column equal to its source, whoever writes the rows.

`compliance_flags.clip_start` is the start of the flag's clip (`clips.utc_start`): a search for a flag
walks the open flags of a kind in the clips' order from one index (issue 21 item 5). The flag refresh
writes it with each flag it opens (it has just read the clip), and puts it back on an open flag that
carries another value (a relink repairs a row written or edited outside it, as it does a flag's
numbers). The database keeps it right when a flag's clip or a clip's start changes (these triggers).
There is no insert trigger: on SQLite its mere presence, firing or not, made inserting flags about
17 us a row slower (a first relink of 468,597 flags: 25.7 s for the flags part against 15.5 s; a
250,000-clip relink 7.8-8.0 s with it, 5.8-5.9 s without, measured 2026-12-05).
Migration 0014_cold_search creates the same triggers (written out there, as a migration must not
change with this module).

A later SQLite migration that rebuilds `clips` or `compliance_flags` (Alembic's batch mode copies the
table into a new one) drops their triggers with the old table: it must create them again.
"""

from __future__ import annotations

_SQLITE = (
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

_POSTGRESQL = (
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


def flag_start_triggers(dialect: str) -> tuple[str, ...]:
    """The statements creating the triggers that fill `compliance_flags.clip_start` on `dialect`."""
    return {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(dialect, ())
