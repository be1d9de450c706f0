"""redaction segments: a rendered redacted copy may cover one segment of its clip (issue 20)

`redaction_renders.start_s`/`end_s`: the segment of the clip the copy covers, in seconds from the
clip's start; both NULL for a copy of the whole clip.

Revision ID: 0011_redaction_segments
Revises: 0010_disclosure
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_redaction_segments"
down_revision = "0010_disclosure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redaction_renders") as batch:
        batch.add_column(sa.Column("start_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("end_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("redaction_renders") as batch:
        batch.drop_column("end_s")
        batch.drop_column("start_s")
