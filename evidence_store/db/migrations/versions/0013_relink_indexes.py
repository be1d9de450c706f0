"""relink indexes: covering indexes for the reads of a full relink (issue 21 item 4)

A full relink walks every officer's clips with their links, and every document's linked footage. With
the former indexes each clip row and each link row was looked up in its table after the index (about a
million random reads each at a million clips); these indexes hold the columns those reads select, so the
walk stays in the index: `ix_clips_officer_start_cover` (which also serves what
`ix_clips_officer_start_id` served: an officer's clips by start, then id), `ix_clip_links_clip_cover`
and `ix_clip_links_document_cover` (which replace the single-column `clip_id` and `document_id` ones).
On SQLite at 250,000 clips the relink's per-officer select went from 1.0-1.4 s to 0.5-0.7 s, the flags'
footage select from 0.54 s to 0.23 s (warm; timed by hand with a throw-away script of the raw
selects, not in bench/; bench_linking.py times the whole relink). Building them on a million clips takes a
few seconds.

Revision ID: 0013_relink_indexes
Revises: 0012_search_indexes
Create Date: 2026-12-05 09:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0013_relink_indexes"
down_revision = "0012_search_indexes"
branch_labels = None
depends_on = None

CLIPS_COVER = ["officer_id", "utc_start", "id", "utc_end", "clock_status", "status"]
LINKS_BY_CLIP = ["clip_id", "document_id", "removed_at", "removed_by", "origin", "uncertain", "is_evidence"]
LINKS_BY_DOCUMENT = ["document_id", "removed_at", "clip_id"]


def upgrade() -> None:
    op.drop_index("ix_clips_officer_start_id", table_name="clips")
    op.create_index("ix_clips_officer_start_cover", "clips", CLIPS_COVER)
    op.drop_index("ix_clip_links_clip_id", table_name="clip_links")
    op.create_index("ix_clip_links_clip_cover", "clip_links", LINKS_BY_CLIP)
    op.drop_index("ix_clip_links_document_id", table_name="clip_links")
    op.create_index("ix_clip_links_document_cover", "clip_links", LINKS_BY_DOCUMENT)


def downgrade() -> None:
    op.drop_index("ix_clip_links_document_cover", table_name="clip_links")
    op.create_index("ix_clip_links_document_id", "clip_links", ["document_id"])
    op.drop_index("ix_clip_links_clip_cover", table_name="clip_links")
    op.create_index("ix_clip_links_clip_id", "clip_links", ["clip_id"])
    op.drop_index("ix_clips_officer_start_cover", table_name="clips")
    op.create_index("ix_clips_officer_start_id", "clips", ["officer_id", "utc_start", "id"])
