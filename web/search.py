"""Moved to `evidence_store.queries.search`; these names stay here only for `web/cli.py`, which issue 14
moves to `entrypoints/cli/web.py` (then this module goes)."""

from evidence_store.queries.search import ClipQuery, SearchError, search_clips

__all__ = ["ClipQuery", "SearchError", "search_clips"]
