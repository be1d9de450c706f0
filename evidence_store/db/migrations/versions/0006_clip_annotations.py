"""clip annotations: markers (a note at a moment of a clip) and tags on clips (issue 19 item 3)

Revision ID: 0006_clip_annotations
Revises: 0005_stations
Create Date: 2026-12-04 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0006_clip_annotations"
down_revision = "0005_stations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clip_markers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("offset_s", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(length=200), nullable=True),
        sa.Column("removed_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_clip_markers_clip_id_clips")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_markers")),
    )
    with op.batch_alter_table("clip_markers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clip_markers_clip_id"), ["clip_id"], unique=False)
    op.create_table(
        "clip_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("added_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_clip_tags_clip_id_clips")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_tags")),
        sa.UniqueConstraint("clip_id", "tag", name="uq_clip_tags_clip_tag"),
    )
    with op.batch_alter_table("clip_tags", schema=None) as batch_op:
        batch_op.create_index("ix_clip_tags_tag", ["tag", "clip_id"], unique=False)


def downgrade() -> None:
    op.drop_table("clip_tags")
    op.drop_table("clip_markers")
