"""Keyset paging of the clip search (issue 21 item 5): following `next_after` from page to page gives
exactly the rows of offset paging, in every sort, on both databases, with clips that share a start,
clips without a start, clips hidden from the user and flagged clips found either way (by id or by a
walk of the start index)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from evidence_store.bootstrap import Station
from evidence_store.db.tables import cases, clip_links, clips, compliance_flags
from evidence_store.domain.access import Role, User
from evidence_store.domain.model import (
    CaseCategory,
    ClipStatus,
    ClockStatus,
    Confidentiality,
    LinkOrigin,
    MediaType,
    RetentionPeriod,
)
from evidence_store.queries import search
from evidence_store.queries.search import ClipQuery, SearchError, search_clips
from tests.conftest import run_cli

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
CUSTODIAN = User(id=1, username="c", display_name="", role=Role.CUSTODIAN, unit="甲")


def _fill(station: Station) -> None:
    rng = random.Random(21)
    starts = [EPOCH + timedelta(minutes=rng.randrange(40)) for _ in range(70)]
    starts[5:9] = [None] * 4  # clips whose start is unknown
    rows = [
        {
            "sha256": f"{i:064x}",
            "size": 1000,
            "media_type": MediaType.VIDEO,
            "original_name": f"F{i}.MP4",
            "utc_start": start,
            "utc_end": start + timedelta(minutes=1) if start else None,
            "clock_status": ClockStatus.MEASURED,
            "status": ClipStatus.READY,
            "ingested_at": EPOCH,
            "media_info": {},
            "warnings": [],
        }
        for i, start in enumerate(starts)
    ]
    now = EPOCH + timedelta(days=1)
    with station.engine.begin() as connection:
        connection.execute(insert(clips), rows)
        connection.execute(
            insert(cases),
            [
                {
                    "number": "乙-秘-1",
                    "category": CaseCategory.INSPECTION,
                    "unit": "乙",
                    "officer_ids": [],
                    "retention_period": RetentionPeriod.YEARS_10,
                    "confidentiality": Confidentiality.PERSONAL_PRIVACY,
                }
            ],
        )
        link: dict[str, Any] = {"case_id": 1, "origin": LinkOrigin.MANUAL, "created_at": now}
        connection.execute(insert(clip_links), [{**link, "clip_id": c} for c in (3, 10, 11, 40)])
        flagged = [c for c in range(1, 71) if c % 3 == 0 or c in (6, 7)]
        connection.execute(
            insert(compliance_flags),
            [
                {
                    "kind": "starts_late",
                    "clip_id": c,
                    "details": {},
                    "opened_at": now,
                    "updated_at": now,
                    "clip_start": starts[c - 1],  # as the flag refresh writes it (clip ids from 1)
                }
                for c in flagged
            ],
        )


def _pages(station: Station, query: ClipQuery, user: User | None, keyset: bool) -> list[list[int]]:
    pages: list[list[int]] = []
    after: str | None = None
    for number in range(40):
        where = {"offset": 0, "after": after} if keyset else {"offset": 7 * number}
        paged = ClipQuery(**{**query.__dict__, "limit": 7, **where})
        with station.connect() as connection:
            page = search_clips(connection, paged, user)
        pages.append([hit.id for hit in page.hits])
        if not page.has_next:
            return pages
        after = page.next_after
        assert after is not None
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("lookup_max", [1_000, 0], ids=["flags-by-id", "flags-by-walk"])
def test_following_next_after_gives_the_pages_offset_paging_gives(
    station: Station, monkeypatch: pytest.MonkeyPatch, lookup_max: int
) -> None:
    monkeypatch.setattr(search, "FLAG_LOOKUP_MAX", lookup_max)
    _fill(station)
    for sort in search.SORTS:
        for filters in ({}, {"flag": "starts_late"}, {"start_from": EPOCH + timedelta(minutes=10)}):
            for user in (None, CUSTODIAN):
                query = ClipQuery(sort=sort, **filters)  # type: ignore[arg-type]
                by_offset = _pages(station, query, user, keyset=False)
                by_cursor = _pages(station, query, user, keyset=True)
                assert by_cursor == by_offset, (sort, filters, user)
                everything = [clip for page in by_offset for clip in page]
                assert len(everything) == len(set(everything))
                if user is not None:
                    assert not {3, 10, 11, 40} & set(everything)  # linked to a case hidden from them
                if not filters:
                    assert len(everything) == 70 - (4 if user else 0)


def test_a_cursor_that_is_not_one_is_refused_and_every_one_of_its_form_is_a_place(station: Station) -> None:
    with station.connect() as connection:
        with pytest.raises(SearchError):
            search_clips(connection, ClipQuery(after="2026-01-01_3"), None)
        for extreme in ("-9999999999999999_0", "9999999999999999_999999999", "_999999999"):
            search_clips(connection, ClipQuery(after=extreme), None)


def test_the_command_line_pages_by_the_cursor_it_prints(
    station: Station, station_env: dict[str, str]
) -> None:
    _fill(station)
    first = run_cli(["clips", "search", "--limit", "30"], station_env)
    assert first.code == 0, first.stderr
    hint = first.stderr.strip().splitlines()[-1]
    assert hint.startswith("... more: --after ")
    after = hint.removeprefix("... more: --after ")
    second = run_cli(["clips", "search", "--limit", "30", "--after", after, "--json"], station_env)
    by_offset = run_cli(["clips", "search", "--limit", "30", "--offset", "30", "--json"], station_env)
    assert second.code == by_offset.code == 0, second.stderr
    assert json.loads(second.stdout)["items"] == json.loads(by_offset.stdout)["items"]
    assert run_cli(["clips", "search", "--after", "yesterday"], station_env).code == 2


def _links(html: str) -> dict[str, str]:
    """The results' clip ids and the pager's links of a /search page."""
    import html as markup
    import re

    pager = html[html.index('<p class="pager">') :]
    found = dict(re.findall(r'<a href="(/search\?[^"]*)"[^>]*>([^<]+)</a>', pager.split("</p>")[0]))
    return {label: markup.unescape(href) for href, label in found.items()}


def _ids(html: str) -> list[str]:
    import re

    return re.findall(r'class="clip-link" href="/clips/(\d+)"', html)


def test_the_search_page_reached_by_cursor_still_links_back_page_by_page(station: Station) -> None:
    """The custodian's /search pages by cursor (issue 21 item 5): a page reached by following "next"
    links back to the page before it, page by page to the first, each showing what it showed going
    forward; a trail that is not one drops the back link and nothing else."""
    from evidence_store.credentials import hash_password
    from tests.factories import add_user
    from tests.integration.test_web_access import PASSWORD, client_for, login

    _fill(station)
    add_user(station, "keeper", "custodian", password_hash=hash_password(PASSWORD))
    client = client_for(station)
    login(client, "keeper", PASSWORD)
    prev, next_ = "上一页", "下一页"
    url, seen = "/search?go=1&limit=20", []
    while True:  # forward by the "next" links, noting each page's clips
        page = client.get(url)
        assert page.status_code == 200, page.text
        seen.append((url, _ids(page.text)))
        links = _links(page.text)
        if len(seen) > 1:
            assert prev in links, url
        if len(seen) > 1 and next_ in links:
            assert "trail=" in links[next_]
        if next_ not in links:
            break
        assert "after=" in links[next_]
        url = links[next_]
    # 70 clips, 4 of them linked to another unit's private case and hidden from this custodian
    assert len(seen) == 4 and sum(len(ids) for _, ids in seen) == 66
    assert len({clip for _, ids in seen for clip in ids}) == 66
    for index in range(len(seen) - 1, 0, -1):  # back by the "previous" links to the first page
        back = client.get(_links(client.get(seen[index][0]).text)[prev])
        assert _ids(back.text) == seen[index - 1][1], index
    assert prev not in _links(client.get(seen[0][0]).text)
    broken = client.get(seen[2][0].replace("trail=", "trail=yesterday."))
    assert broken.status_code == 200 and _ids(broken.text) == seen[2][1]
    assert prev not in _links(broken.text) and next_ in _links(broken.text)
