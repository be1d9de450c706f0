"""spool: store-and-forward, a station docks into its local spool while the backend is unreachable (issue 18)

One row per spooled transfer that was forwarded: in the backend it is the key that makes a forward
idempotent (the hash of the spooled `transfer.started` journal entry, unique), in the station's spool
journal (which has the same schema) it is the spool's note of what it forwarded and when it freed it.

Revision ID: 0007_spool
Revises: 0006_clip_annotations
Create Date: 2026-12-04 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0007_spool"
down_revision = "0006_clip_annotations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spool_forwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journal_entry_hash", sa.String(length=64), nullable=False),
        sa.Column("station_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("spool_transfer_id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=True),
        sa.Column("forwarded_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("clips", sa.Integer(), nullable=False),
        sa.Column("attachments", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("freed_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spool_forwards")),
        sa.UniqueConstraint("journal_entry_hash", name=op.f("uq_spool_forwards_journal_entry_hash")),
    )


def downgrade() -> None:
    op.drop_table("spool_forwards")
