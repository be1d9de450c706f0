"""stations: several docking stations, each with its own key, share one database (issue 18)

Every audit event names the key that signed it. Events written before this migration get an empty
fingerprint: they were all signed by the one station of that time, whose key `evidence init` enrols
and approves first after the migration (see evidence_store/domain/stations.py).

Revision ID: 0005_stations
Revises: 0004_flag_reviews
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0005_stations"
down_revision = "0004_flag_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enrolled_by", sa.String(length=200), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("approved_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("last_seen", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("refused_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refused_action", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stations")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_stations_fingerprint")),
        sa.UniqueConstraint("name", name=op.f("uq_stations_name")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_fingerprint", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("key_fingerprint")
    op.drop_table("stations")
