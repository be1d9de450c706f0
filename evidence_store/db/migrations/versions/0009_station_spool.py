"""station spool: each station's store-and-forward spool depth as it last reported it (issue 18)

A station's spool lives on its own host; so that every host's status and dashboard show a filling spool,
the station notes its depth on its `stations` row after each forwarding round (held bytes, its
high-water mark, transfers and clips waiting, when). NULL: it never reported (no spool, or a single
station).

Revision ID: 0009_station_spool
Revises: 0008_redactions
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0009_station_spool"
down_revision = "0008_redactions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("spool_held_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("spool_high_water_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("spool_transfers_waiting", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("spool_clips_waiting", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("spool_reported_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        for column in (
            "spool_reported_at",
            "spool_clips_waiting",
            "spool_transfers_waiting",
            "spool_high_water_bytes",
            "spool_held_bytes",
        ):
            batch.drop_column(column)
