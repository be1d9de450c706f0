"""disclosure: a party's applications to read or copy records, and their viewings and deliveries (R15)

Revision ID: 0010_disclosure
Revises: 0009_station_spool
Create Date: 2026-12-05 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0010_disclosure"
down_revision = "0009_station_spool"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disclosure_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_name", sa.Text(), nullable=False),
        sa.Column("id_document_type", sa.String(length=40), nullable=False),
        sa.Column("id_document_number", sa.String(length=100), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("read", "copy", name="applicationkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("clip_ids", sa.JSON(), nullable=False),
        sa.Column("received_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "received",
                "approved",
                "refused",
                "viewed",
                "delivered",
                "withdrawn",
                name="applicationstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_disclosure_applications_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_applications")),
    )
    with op.batch_alter_table("disclosure_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disclosure_applications_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disclosure_applications_state"), ["state"], unique=False)
    op.create_table(
        "disclosure_handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("by_user", sa.String(length=200), nullable=False),
        sa.Column("at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["disclosure_applications.id"],
            name=op.f("fk_disclosure_handovers_application_id_disclosure_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_handovers")),
    )
    with op.batch_alter_table("disclosure_handovers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disclosure_handovers_application_id"), ["application_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("disclosure_handovers")
    op.drop_table("disclosure_applications")
