"""search indexes: covering, partial indexes of the open links and open flags (issue 21 item 5)

A cold search reads every page it needs from the disk: the per-clip probes of a search (is the clip
linked to a case hidden from the user? has it an open flag of this kind?) and the clips of a case are
answered from these small indexes alone, without visiting the rows of `clip_links` or
`compliance_flags`. The officer's and the recorder's start indexes take the clip id as well, so walking
them in the search's order (start, then id) visits no row of `clips` on PostgreSQL either.

Revision ID: 0012_search_indexes
Revises: 0011_redaction_segments
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_search_indexes"
down_revision = "0011_redaction_segments"
branch_labels = None
depends_on = None

OPEN_LINK = sa.text("removed_at IS NULL")
OPEN_FLAG = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_clips_officer_start", table_name="clips")
    op.drop_index("ix_clips_device_start", table_name="clips")
    op.create_index("ix_clips_officer_start_id", "clips", ["officer_id", "utc_start", "id"])
    op.create_index("ix_clips_device_start_id", "clips", ["device_id", "utc_start", "id"])
    op.create_index(
        "ix_clip_links_open_clip",
        "clip_links",
        ["clip_id", "case_id"],
        sqlite_where=OPEN_LINK,
        postgresql_where=OPEN_LINK,
    )
    op.create_index(
        "ix_clip_links_open_case",
        "clip_links",
        ["case_id", "clip_id"],
        sqlite_where=OPEN_LINK,
        postgresql_where=OPEN_LINK,
    )
    op.create_index(
        "ix_compliance_flags_open_clip",
        "compliance_flags",
        ["clip_id", "kind"],
        sqlite_where=OPEN_FLAG,
        postgresql_where=OPEN_FLAG,
    )


def downgrade() -> None:
    op.drop_index("ix_compliance_flags_open_clip", table_name="compliance_flags")
    op.drop_index("ix_clip_links_open_case", table_name="clip_links")
    op.drop_index("ix_clip_links_open_clip", table_name="clip_links")
    op.drop_index("ix_clips_device_start_id", table_name="clips")
    op.drop_index("ix_clips_officer_start_id", table_name="clips")
    op.create_index("ix_clips_officer_start", "clips", ["officer_id", "utc_start"])
    op.create_index("ix_clips_device_start", "clips", ["device_id", "utc_start"])
