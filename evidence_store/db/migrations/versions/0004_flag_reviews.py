"""flag reviews: a compliance flag under a supervisor's review holds its clips (issue 17)

Revision ID: 0004_flag_reviews
Revises: 0003_interrupted_work
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0004_flag_reviews"
down_revision = "0003_interrupted_work"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("opened_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flag_id"], ["compliance_flags.id"], name=op.f("fk_flag_reviews_flag_id_compliance_flags")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_reviews")),
    )
    with op.batch_alter_table("flag_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flag_reviews_flag_id"), ["flag_id"], unique=False)
        batch_op.create_index("ix_flag_reviews_open", ["closed_at", "flag_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flag_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_flag_reviews_open")
        batch_op.drop_index(batch_op.f("ix_flag_reviews_flag_id"))
    op.drop_table("flag_reviews")
