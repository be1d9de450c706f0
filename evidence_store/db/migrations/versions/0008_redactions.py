"""redactions: a clip's versioned redaction specifications and the copies rendered from them (issue 20)

Revision ID: 0008_redactions
Revises: 0007_spool
Create Date: 2026-12-04 22:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import evidence_store.db.types

revision = "0008_redactions"
down_revision = "0007_spool"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redaction_specs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("spec_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_redaction_specs_version_positive")),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_redaction_specs_clip_id_clips")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redaction_specs")),
        sa.UniqueConstraint("clip_id", "version", name="uq_redaction_specs_clip_version"),
    )
    with op.batch_alter_table("redaction_specs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redaction_specs_clip_id"), ["clip_id"], unique=False)
    op.create_table(
        "redaction_renders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("spec_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "proxy",
                "poster",
                "contact_sheet",
                "segment",
                "disclosure",
                "redacted",
                name="derivativekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("rendered_sha256", sa.String(length=64), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("derived_from_sha256", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=100), nullable=False),
        sa.Column("tool_version", sa.Text(), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", evidence_store.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_redaction_renders_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["spec_id"], ["redaction_specs.id"], name=op.f("fk_redaction_renders_spec_id_redaction_specs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redaction_renders")),
    )
    with op.batch_alter_table("redaction_renders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redaction_renders_clip_id"), ["clip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redaction_renders_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_redaction_renders_spec_id"), ["spec_id"], unique=False)


def downgrade() -> None:
    op.drop_table("redaction_renders")
    op.drop_table("redaction_specs")
