"""A clip search that is itself on record (R17: access to the records is supervised).

The web and `evidence clips search` both run a search through here, so a search leaves the same audit
event whoever asks: the filters, the sort, the page and the ids of the clips it returned.
"""

from __future__ import annotations

from evidence_store.bootstrap import Station
from evidence_store.domain.access import User
from evidence_store.queries.search import ClipQuery, SearchPage, search_clips


def recorded_search(
    station: Station, query: ClipQuery, user: User | None, *, actor: str, source: str | None = None
) -> SearchPage:
    """Search the clips `user` may see (all of them for `None`, the station's own command line) and
    record the search with the clip ids it returned (R11, R13, R17)."""
    with station.connect() as connection:
        page = search_clips(connection, query, user)
    with station.transaction() as session:
        station.audit.record(
            session,
            actor=actor,
            action="clip.searched",
            object_type="search",
            object_id="clips",
            details={
                "filters": query.filters(),
                "sort": query.sort,
                "offset": query.offset,
                "after": query.after,
                "results": [hit.id for hit in page.hits],
            },
            source=source,
        )
    return page
