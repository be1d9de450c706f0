"""Case linking and compliance flags over a real database (both backends): footage and documents in
either order end in the same links (R5); re-running changes nothing; an unknown recorder clock links as
uncertain; each flag appears with its numbers and clears itself when its cause goes away (R1, R5-R7);
decisions by hand survive automatic linking and are audited."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, update

from evidence_store.bootstrap import Station
from evidence_store.cases import flags_service, linking_service
from evidence_store.cases.importer import import_cases
from evidence_store.cases.linking_service import link_clip, link_documents, relink_all
from evidence_store.db.tables import audit_events, clip_links, clips, compliance_flags, documents, officers
from evidence_store.domain.linking import ClipSpan, DocumentWindow, link_naively
from evidence_store.domain.model import (
    ClipStatus,
    ClockStatus,
    MediaType,
    Officer,
    Transfer,
    TransferOutcome,
    TransferSource,
)
from evidence_store.queries.search import ClipQuery, search_clips
from tests.conftest import run_cli
from tests.factories import add_clip_row
from workers.steps import _linking_hand_off

# 2026-03-02 09:00 in Asia/Shanghai
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def at(minutes: float) -> datetime:
    return T0 + minutes * MIN


def local(minutes: float) -> str:
    """The same moment written as a document would be: station time, no zone."""
    return (T0 + timedelta(hours=8) + minutes * MIN).strftime("%Y-%m-%d %H:%M:%S")


def officer_id(station: Station, badge: str) -> int:
    with station.transaction() as session:
        found = session.scalar(select(officers.c.id).where(officers.c.badge_number == badge))
        if found is not None:
            return int(found)
        officer = Officer(badge_number=badge)
        session.add(officer)
        session.flush()
        assert officer.id is not None
        return officer.id


def add_clip(
    station: Station,
    label: str,
    badge: str | None,
    start_min: float | None,
    length_min: float = 10,
    *,
    clock: ClockStatus = ClockStatus.MEASURED,
    late: bool = False,
    handed_over_min: float | None = None,
) -> int:
    """A clip row as the dock would have recorded it (officer, corrected UTC times, clock status)."""
    owner = officer_id(station, badge) if badge else None
    transfer_id = None
    if handed_over_min is not None:
        with station.transaction() as session:
            transfer = Transfer(
                source=TransferSource.DOCK,
                officer_id=owner,
                started_at=at(handed_over_min),
                outcome=TransferOutcome.COMPLETE,
            )
            session.add(transfer)
            session.flush()
            transfer_id = transfer.id
    start = at(start_min) if start_min is not None else None
    return add_clip_row(
        station,
        label,
        size=1000,
        media_type=MediaType.VIDEO,
        original_name=f"{label}.MP4",
        officer_id=owner,
        transfer_id=transfer_id,
        utc_start=start,
        utc_end=start + length_min * MIN if start is not None else None,
        clock_status=clock,
        status=ClipStatus.READY,
        ingested_at=at(0),
        late_handover=late,
    )


def write_cases(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"cases": cases}, ensure_ascii=False), encoding="utf-8")
    return path


def case(number: str, documents_: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"number": number, "category": "行政检查", "documents": documents_, **extra}


def doc(
    ident: str, badges: list[str], start_min: float, end_min: float | None, kind: str = "on_site_inspection"
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": ident, "kind": kind, "officers": badges, "start": local(start_min)}
    if end_min is not None:
        item["end"] = local(end_min)
    return item


def import_json(station: Station, tmp_path: Path, name: str, cases: list[dict[str, Any]]) -> None:
    import_cases(station, write_cases(tmp_path / name, cases), actor="test")


def active_links(station: Station) -> set[tuple[str, str, bool]]:
    """(clip file name, document id, uncertain) of every active link to a document."""
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(clips.c.original_name, documents.c.external_id, clip_links.c.uncertain)
            .join(clips, clips.c.id == clip_links.c.clip_id)
            .join(documents, documents.c.id == clip_links.c.document_id)
            .where(clip_links.c.removed_at.is_(None))
        ).all()
    return {(r.original_name.removesuffix(".MP4"), r.external_id, bool(r.uncertain)) for r in rows}


def open_flags(station: Station) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, document id or clip file name) -> details of every open flag."""
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(compliance_flags, documents.c.external_id, clips.c.original_name)
            .outerjoin(documents, documents.c.id == compliance_flags.c.document_id)
            .outerjoin(clips, clips.c.id == compliance_flags.c.clip_id)
            .where(compliance_flags.c.cleared_at.is_(None))
        ).all()
    return {(r.kind, r.external_id or r.original_name.removesuffix(".MP4")): r.details for r in rows}


def table_count(station: Station, table: Any, *where: Any) -> int:
    with station.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table).where(*where)) or 0)


# The same day twice, for two pairs of officers: (clip label, officer, start, length) and documents.
CLIPS = [
    ("a", "1", 0, 10),  # inside d1
    ("b", "1", 12, 10),  # inside d1, and within tolerance of d2's start
    ("c", "2", 26, 8),  # the partner's recorder, inside d2
    ("d", "1", 200, 5),  # far from everything
    ("e", "1", 56, 3),  # just past d2's end + 5 minutes of tolerance: only the moment d3
]
DOCS = [
    ("d1", ["1", "2"], -2, 20),
    ("d2", ["1", "2"], 25, 50),
    ("d3", ["1"], 58, None),  # no end: a moment
]


def scenario_cases(prefix: str) -> list[dict[str, Any]]:
    return [
        case(
            f"CASE-{prefix}",
            [doc(f"{prefix}-{name}", [f"{prefix}{b}" for b in badges], s, e) for name, badges, s, e in DOCS],
        )
    ]


def expected_links(prefix: str) -> set[tuple[str, str, bool]]:
    badge_ids = {"1": 1, "2": 2}
    spans = [ClipSpan(i, badge_ids[b], at(s), at(s + n)) for i, (_, b, s, n) in enumerate(CLIPS)]
    windows = [
        DocumentWindow(i, 1, tuple(badge_ids[b] for b in badges), at(s), at(e) if e is not None else None)
        for i, (_, badges, s, e) in enumerate(DOCS)
    ]
    links = link_naively(spans, windows)
    return {
        (f"{prefix}-{CLIPS[link.clip_id][0]}", f"{prefix}-{DOCS[link.document_id][0]}", False)
        for link in links
    }


def test_clips_and_documents_in_either_order_end_in_the_same_links(station: Station, tmp_path: Path) -> None:
    # order 1: footage first (processed, so handed to linking, with nothing to link to yet: flagged as
    # unassigned), documents imported afterwards (linking by link_documents after the import)
    hand_off = _linking_hand_off()
    for label, badge, start, length in CLIPS:
        hand_off(station, add_clip(station, f"x-{label}", f"x{badge}", start, length))
    import_json(station, tmp_path, "x.json", scenario_cases("x"))
    # order 2: documents first, footage processed afterwards (linking by the processing hand-off)
    import_json(station, tmp_path, "y.json", scenario_cases("y"))
    for label, badge, start, length in CLIPS:
        hand_off(station, add_clip(station, f"y-{label}", f"y{badge}", start, length))

    links = active_links(station)
    x_links = {(c, d, u) for c, d, u in links if c.startswith("x-")}
    y_links = {(c, d, u) for c, d, u in links if c.startswith("y-")}
    assert x_links == expected_links("x")
    assert y_links == expected_links("y")
    assert {(c[2:], d[2:], u) for c, d, u in x_links} == {(c[2:], d[2:], u) for c, d, u in y_links}
    assert ("x-e", "x-d3", False) in x_links and ("x-c", "x-d2", False) in x_links
    assert not any(c == "x-d" for c, _, _ in x_links)

    # and a full relink finds exactly the same links and flags, changing nothing (a clip never handed to
    # linking would get its unassigned_footage flag here: every relink recomputes every flag)
    before = table_count(station, clip_links)
    changes = relink_all(station)
    assert (changes.added, changes.removed) == (0, 0)
    assert changes.flag_counts == {"flags_opened": 0, "flags_updated": 0, "flags_cleared": 0}
    assert table_count(station, clip_links) == before
    assert active_links(station) == links


def test_a_first_relink_into_an_empty_link_table_finds_the_same_links(
    station: Station, tmp_path: Path
) -> None:
    """On SQLite the first relink takes the link table's indexes down for the bulk insert (see
    `evidence_store.db.bulk.indexes_down_if_empty`): the links, the flags and the indexes must come
    out as always."""
    import_json(station, tmp_path, "e.json", scenario_cases("e"))  # no footage yet: no links
    for label, badge, start, length in CLIPS:
        add_clip(station, f"e-{label}", f"e{badge}", start, length)  # not handed to linking
    assert table_count(station, clip_links) == 0
    with station.engine.connect() as connection:
        indexes_before = {i["name"] for i in inspect(connection).get_indexes("clip_links")}

    changes = relink_all(station)

    assert active_links(station) == expected_links("e")
    assert changes.added == len(expected_links("e")) and changes.flag_counts["flags_opened"] > 0
    with station.engine.connect() as connection:
        assert {i["name"] for i in inspect(connection).get_indexes("clip_links")} == indexes_before
    assert indexes_before == {index.name for index in clip_links.indexes}  # every declared one
    flags = open_flags(station)
    assert any(kind == "ends_early" for kind, _ in flags), flags
    assert not relink_all(station).changed  # and the usual path (indexes up) agrees
    assert open_flags(station) == flags

    # the same scenario linked clip by clip gives the same links and flags: the first relink also flags
    # what it links to nothing (clip e-d, unassigned footage), as linking that clip when it came does
    import_json(station, tmp_path, "f.json", scenario_cases("f"))
    for label, badge, start, length in CLIPS:
        link_clip(station, add_clip(station, f"f-{label}", f"f{badge}", start, length))
    assert active_links(station) >= expected_links("f")

    def flags_of(prefix: str) -> set[tuple[str, str]]:
        return {
            (kind, subject[2:]) for kind, subject in open_flags(station) if subject.startswith(f"{prefix}-")
        }

    assert ("unassigned_footage", "d") in flags_of("e")
    assert flags_of("e") == flags_of("f") != set()


def test_a_first_relink_that_fails_leaves_the_link_table_and_its_indexes_as_they_were(
    station: Station, tmp_path: Path, monkeypatch: Any
) -> None:
    """The indexes dropped for a first relink on SQLite come back with the rollback when it fails."""
    import_json(station, tmp_path, "g.json", scenario_cases("g"))
    for label, badge, start, length in CLIPS:
        add_clip(station, f"g-{label}", f"g{badge}", start, length)
    with station.engine.connect() as connection:
        indexes_before = {i["name"] for i in inspect(connection).get_indexes("clip_links")}

    def fail_before_the_indexes_are_built_again(self: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(linking_service._LinkWriter, "flush", fail_before_the_indexes_are_built_again)
    with pytest.raises(RuntimeError, match="disk full"):
        relink_all(station)
    monkeypatch.undo()

    assert table_count(station, clip_links) == 0
    with station.engine.connect() as connection:
        assert {i["name"] for i in inspect(connection).get_indexes("clip_links")} == indexes_before
    assert indexes_before == {index.name for index in clip_links.indexes}  # every declared one
    relink_all(station)  # and the next relink does the work
    assert active_links(station) == expected_links("g")


def test_a_relink_runs_with_the_cyclic_collector_paused_and_puts_it_back(
    station: Station, tmp_path: Path, monkeypatch: Any
) -> None:
    """Both passes of a relink (links, then flags) run with no cyclic collection, for every kind of
    relink; the collector is on again after it, also after a relink that fails."""
    import_json(station, tmp_path, "h.json", scenario_cases("h"))
    for label, badge, start, length in CLIPS:
        add_clip(station, f"h-{label}", f"h{badge}", start, length)
    seen: list[tuple[str, bool]] = []
    real_links, real_all_flags, real_flags = (
        linking_service._relink_officers,
        linking_service.refresh_all_flags,
        linking_service.refresh_flags,
    )

    def spy(name: str, real: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, gc.isenabled()))
            return real(*args, **kwargs)

        return run

    monkeypatch.setattr(linking_service, "_relink_officers", spy("links", real_links))
    monkeypatch.setattr(linking_service, "refresh_all_flags", spy("all flags", real_all_flags))
    monkeypatch.setattr(linking_service, "refresh_flags", spy("flags", real_flags))
    assert gc.isenabled()
    assert relink_all(station).full  # the first: everything
    add_clip(station, "h-late", "h1", 40, 5)
    assert not relink_all(station).full  # what the journal names
    assert relink_all(station, full=True).full
    assert seen == [
        ("links", False),
        ("all flags", False),
        ("links", False),
        ("flags", False),
        ("links", False),
        ("all flags", False),
    ]
    assert gc.isenabled()

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(linking_service, "refresh_all_flags", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        relink_all(station, full=True)
    assert gc.isenabled()


def test_a_first_relink_into_an_empty_flag_table_opens_the_flags_linking_each_clip_opened(
    station: Station, tmp_path: Path, monkeypatch: Any
) -> None:
    """A relink into a flag table with no row at all (a station's first relink) takes, on SQLite, the
    table's indexes down for the inserts and does not look for open flags (`flags_service`'s
    `none_open`): it must open exactly the flags linking each clip as it came opened - a late handover
    of linked footage, footage of no case, a document without an end, footage cut short - and leave the
    indexes as declared; a failure half-way puts the indexes back with the rollback."""
    import_json(station, tmp_path, "n.json", scenario_cases("n"))
    for label, badge, start, length in CLIPS:
        late = label == "a"  # linked to d1, and handed over 30 hours after it was recorded
        clip_id = add_clip(
            station, f"n-{label}", f"n{badge}", start, length, late=late, handed_over_min=start + 30 * 60
        )
        link_clip(station, clip_id)
    as_linked = open_flags(station)
    kinds = {kind for kind, _subject in as_linked}
    assert {"late_handover", "unassigned_footage", "document_without_end"} <= kinds, kinds
    with station.engine.connect() as connection:
        indexes_before = {i["name"] for i in inspect(connection).get_indexes("compliance_flags")}
    assert indexes_before == {index.name for index in compliance_flags.indexes}  # every declared one

    def empty_the_flag_table() -> None:
        with station.transaction() as session:
            session.execute(compliance_flags.delete())
        assert table_count(station, compliance_flags) == 0

    empty_the_flag_table()
    real_apply = flags_service._FlagWriter.apply
    calls = 0

    def fail_on_the_second_page(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")
        real_apply(self, *args, **kwargs)

    monkeypatch.setattr(flags_service._FlagWriter, "apply", fail_on_the_second_page)
    with pytest.raises(RuntimeError, match="disk full"):
        relink_all(station, full=True)
    monkeypatch.undo()
    assert table_count(station, compliance_flags) == 0
    with station.engine.connect() as connection:
        assert {i["name"] for i in inspect(connection).get_indexes("compliance_flags")} == indexes_before

    changes = relink_all(station, full=True)

    assert changes.flag_counts["flags_opened"] == len(as_linked)
    assert open_flags(station) == as_linked
    with station.engine.connect() as connection:
        assert {i["name"] for i in inspect(connection).get_indexes("compliance_flags")} == indexes_before
    # and the usual path (indexes up, open flags read) finds nothing to change
    again = relink_all(station, full=True)
    assert not again.changed and not any(again.flag_counts.values())


def test_relink_with_all_flags_is_the_same_relink(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    """`cases relink --all-flags` once recomputed flags over a different set than `cases relink` (every
    document and clip against the ones whose links changed) and the two disagreed (issue 21: 324k flags
    against 146k). Every relink now recomputes every flag; the option is still accepted."""
    import_json(station, tmp_path, "a.json", scenario_cases("a"))
    for label, badge, start, length in CLIPS:
        add_clip(station, f"a-{label}", f"a{badge}", start, length)  # not handed to linking
    first = run_cli(["cases", "relink", "--json"], station_env)
    assert first.code == 0, first.stderr
    links, flags = active_links(station), open_flags(station)
    assert ("unassigned_footage", "a-d") in flags
    for args in (["--all-flags"], []):
        again = run_cli(["cases", "relink", *args, "--json"], station_env)
        assert again.code == 0, again.stderr
        counts = json.loads(again.stdout)
        assert (counts["links_added"], counts["links_removed"]) == (0, 0)
        assert (counts["flags_opened"], counts["flags_updated"], counts["flags_cleared"]) == (0, 0, 0)
    assert (active_links(station), open_flags(station)) == (links, flags)
    assert "--all-flags" not in run_cli(["cases", "relink", "--help"], station_env).stdout
    # a tolerance other than the one linking uses as things arrive: said, since the two then disagree
    other = run_cli(["cases", "relink", "--tolerance", "2", "--json"], station_env)
    assert other.code == 0, other.stderr
    assert "--tolerance 2 is not EVIDENCE_LINK_TOLERANCE_MINUTES (5)" in other.stderr
    assert "warning" not in run_cli(["cases", "relink", "--tolerance", "5"], station_env).stderr


def test_running_linking_again_changes_nothing(station: Station, tmp_path: Path) -> None:
    ids = [
        add_clip(station, f"r-{label}", f"r{badge}", start, length) for label, badge, start, length in CLIPS
    ]
    import_json(station, tmp_path, "r.json", scenario_cases("r"))
    for clip_id in ids:  # as processing hands each clip over
        link_clip(station, clip_id)
    links, flags = active_links(station), open_flags(station)
    assert ("unassigned_footage", "r-d") in flags
    rows = table_count(station, clip_links)
    flag_rows = table_count(station, compliance_flags)
    for _ in range(2):
        assert not relink_all(station).changed
        for clip_id in ids:
            assert not link_clip(station, clip_id).changed
        with station.engine.connect() as connection:
            doc_ids = connection.scalars(select(documents.c.id)).all()
        assert not link_documents(station, doc_ids).changed
        import_json(station, tmp_path, "r.json", scenario_cases("r"))
    assert active_links(station) == links
    assert open_flags(station) == flags
    assert table_count(station, clip_links) == rows
    assert table_count(station, compliance_flags) == flag_rows


def test_a_clip_with_an_unknown_clock_links_as_uncertain(station: Station, tmp_path: Path) -> None:
    import_json(station, tmp_path, "u.json", [case("CASE-U", [doc("U-1", ["u1"], 0, 30)])])
    clip_id = add_clip(station, "u-clip", "u1", 5, 10, clock=ClockStatus.UNKNOWN)
    link_clip(station, clip_id)
    assert active_links(station) == {("u-clip", "U-1", True)}
    # the clock is measured after all (e.g. the recorder docked again): the link becomes certain
    with station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == clip_id).values(clock_status=ClockStatus.MEASURED))
    changes = relink_all(station)
    assert (changes.added, changes.removed) == (1, 1)
    assert active_links(station) == {("u-clip", "U-1", False)}
    assert table_count(station, clip_links) == 2  # the uncertain link is kept as history


def test_missing_video_clears_when_an_exception_is_approved(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    import_json(
        station,
        tmp_path,
        "m.json",
        [
            case(
                "CASE-M",
                [
                    doc("M-1", ["m1"], 0, 40),
                    doc("M-2", ["m1"], 60, 90, kind="inquiry"),  # no video needed (R7 does not list it)
                ],
            )
        ],
    )
    flags = open_flags(station)
    assert ("missing_video", "M-2") not in flags
    details = flags[("missing_video", "M-1")]
    assert details["window_start"] == at(0).isoformat()
    assert details["window_end"] == at(40).isoformat()
    assert "R7" in details["reason"]
    # the act was in March and the station's clock is later: R8's filing window has passed unfiled
    assert flags[("filing_overdue", "M-1")]["due"] == (at(40) + timedelta(days=30)).isoformat()

    approved = run_cli(
        [
            "cases",
            "exception",
            "CASE-M",
            "--document",
            "M-1",
            "--reason",
            "记录仪故障，已书面说明",
            "--approved-by",
            "张科长",
            "--json",
        ],
        station_env,
    )
    assert approved.code == 0, approved.stderr
    assert json.loads(approved.stdout)["flags_cleared"] == 2  # missing_video and filing_overdue (R6, R8)
    assert ("missing_video", "M-1") not in open_flags(station)
    assert ("filing_overdue", "M-1") not in open_flags(station)
    with station.engine.connect() as connection:
        cleared = connection.execute(
            select(compliance_flags).where(compliance_flags.c.kind == "missing_video")
        ).one()
        event = connection.execute(
            select(audit_events).where(audit_events.c.action == "recording_exception.approved")
        ).one()
    assert cleared.cleared_at is not None
    assert json.loads(event.details)["reason"] == "记录仪故障，已书面说明"
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_r5_flags_carry_their_numbers_update_and_clear(station: Station, tmp_path: Path) -> None:
    import_json(
        station,
        tmp_path,
        "t.json",
        [
            case(
                "CASE-T",
                [
                    doc("LATE", ["t1"], 0, 60),
                    doc("EARLY", ["t1"], 100, 160),
                    doc("GAP", ["t1"], 200, 260),
                ],
            )
        ],
    )
    add_clip(station, "late-1", "t1", 20, 40)  # starts 20 minutes after LATE starts
    add_clip(station, "early-1", "t1", 100, 30)  # stops 30 minutes before EARLY ends
    add_clip(station, "gap-1", "t1", 200, 20)
    add_clip(station, "gap-2", "t1", 235, 25)  # 15 minutes of nothing in between
    relink_all(station)
    flags = open_flags(station)
    assert flags[("starts_late", "LATE")]["uncovered_seconds"] == 1200
    assert flags[("starts_late", "LATE")]["footage_start"] == at(20).isoformat()
    assert flags[("ends_early", "EARLY")]["uncovered_seconds"] == 1800
    gap = flags[("coverage_gap", "GAP")]
    assert gap["uncovered_seconds"] == 900
    assert gap["gaps"] == [{"from": at(220).isoformat(), "to": at(235).isoformat(), "seconds": 900.0}]
    assert not any(kind == "missing_video" for kind, _ in flags)
    with station.engine.connect() as connection:
        late_flag_id = connection.scalar(
            select(compliance_flags.c.id).where(compliance_flags.c.kind == "starts_late")
        )

    # footage from closer to the start: the same flag, new numbers
    link_clip(station, add_clip(station, "late-0", "t1", 10, 8))
    flags = open_flags(station)
    assert flags[("starts_late", "LATE")]["uncovered_seconds"] == 600
    with station.engine.connect() as connection:
        row = connection.execute(
            select(compliance_flags).where(compliance_flags.c.kind == "starts_late")
        ).one()
    assert row.id == late_flag_id and row.cleared_at is None and row.updated_at >= row.opened_at

    # the causes go away: each flag clears itself
    link_clip(station, add_clip(station, "late-00", "t1", 1, 10))
    link_clip(station, add_clip(station, "early-2", "t1", 128, 30))
    link_clip(station, add_clip(station, "gap-fill", "t1", 219, 17))
    flags = open_flags(station)
    assert not {("starts_late", "LATE"), ("ends_early", "EARLY"), ("coverage_gap", "GAP")} & flags.keys()
    assert (
        table_count(
            station,
            compliance_flags,
            compliance_flags.c.cleared_at.is_not(None),
            compliance_flags.c.kind.in_(["starts_late", "ends_early", "coverage_gap"]),
        )
        == 3
    )


def test_a_relink_puts_back_flag_numbers_edited_in_the_database_and_ignores_formatting(
    station: Station, tmp_path: Path
) -> None:
    """A relink compares stored details by value: an edited number is put back (an update), the same
    value written with other spacing or escapes is left alone."""
    import_json(station, tmp_path, "f.json", [case("CASE-F", [doc("F-LATE", ["f1"], 0, 60)])])
    add_clip(station, "f-late", "f1", 20, 40)
    relink_all(station)
    right = open_flags(station)[("starts_late", "F-LATE")]
    assert right["uncovered_seconds"] == 1200

    def stored_details(value: str) -> None:
        with station.engine.begin() as connection:
            connection.execute(
                update(compliance_flags)
                .where(compliance_flags.c.kind == "starts_late")
                .values(details=json.loads(value))
            )
            if connection.dialect.name == "sqlite":  # the text itself, as a hand edit would leave it
                connection.exec_driver_sql(
                    "UPDATE compliance_flags SET details = ? WHERE kind = 'starts_late'", (value,)
                )

    stored_details(json.dumps({**right, "uncovered_seconds": 1}, indent=1))
    repaired = relink_all(station)
    assert repaired.flag_counts["flags_updated"] == 1
    assert open_flags(station)[("starts_late", "F-LATE")] == right

    stored_details(json.dumps(right, indent=2, ensure_ascii=True, sort_keys=True))
    again = relink_all(station)
    assert (again.flag_counts["flags_opened"], again.flag_counts["flags_updated"]) == (0, 0)
    assert open_flags(station)[("starts_late", "F-LATE")] == right


def test_a_relink_puts_back_a_flags_copy_of_its_clips_start(station: Station, tmp_path: Path) -> None:
    """The flag search finds a flag by its copy of the clip's start (`clip_start`); a flag written or
    edited outside the flag refresh with another value is missed there until a relink puts it back."""
    import_json(station, tmp_path, "s.json", [case("CASE-S", [doc("S-1", ["s1"], 0, 30)])])
    stray = add_clip(station, "s-stray", "s1", 300, 5)  # linked to nothing: unassigned footage
    relink_all(station)
    that_day = ClipQuery(flag="unassigned_footage", start_from=at(200), start_to=at(400))

    def found() -> list[int]:
        with station.engine.connect() as connection:
            return [hit.id for hit in search_clips(connection, that_day, None).hits]

    assert found() == [stray]
    for wrong in (at(-10_000), None):
        with station.engine.begin() as connection:
            connection.execute(update(compliance_flags).values(clip_start=wrong))
        assert found() == []
        repaired = relink_all(station)
        assert not repaired.changed and not any(repaired.flag_counts.values())  # no flag changed
        assert found() == [stray]
    with station.engine.connect() as connection:
        start, clip_start = connection.execute(
            select(clips.c.utc_start, compliance_flags.c.clip_start).join(
                compliance_flags, compliance_flags.c.clip_id == clips.c.id
            )
        ).one()
    assert clip_start == start


def test_document_without_end_is_flagged_until_it_has_one(station: Station, tmp_path: Path) -> None:
    cases = [case("CASE-E", [doc("E-1", ["e1"], 0, None)])]
    import_json(station, tmp_path, "e.json", cases)
    link_clip(station, add_clip(station, "e-clip", "e1", 3, 5))  # within 5 minutes of the moment
    assert active_links(station) == {("e-clip", "E-1", False)}
    assert open_flags(station)[("document_without_end", "E-1")]["start"] == at(0).isoformat()
    cases[0]["documents"][0]["end"] = local(8)
    import_json(station, tmp_path, "e.json", cases)
    assert ("document_without_end", "E-1") not in open_flags(station)


def test_late_handover_and_unassigned_footage(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    import_json(station, tmp_path, "h.json", [case("CASE-H", [doc("H-1", ["h1"], 0, 30)])])
    late = add_clip(station, "h-late", "h1", 5, 20, late=True, handed_over_min=25 + 30 * 60)
    stray = add_clip(station, "h-stray", "h1", 500, 10)
    for clip_id in (late, stray):
        link_clip(station, clip_id)
    flags = open_flags(station)
    assert flags[("late_handover", "h-late")]["hours_after_recording"] == 30.0
    assert flags[("late_handover", "h-late")]["recording_end"] == at(25).isoformat()
    assert ("unassigned_footage", "h-late") not in flags
    assert flags[("unassigned_footage", "h-stray")] == {"reason": "linked to no case"}

    linked = run_cli(
        ["cases", "link", str(stray), "CASE-H", "--reason", "巡查途中发现的违法线索"], station_env
    )
    assert linked.code == 0, linked.stderr
    assert ("unassigned_footage", "h-stray") not in open_flags(station)
    # the handover record is corrected: the late-handover flag clears on the next refresh
    with station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == late).values(late_handover=False))
    link_clip(station, late)
    assert ("late_handover", "h-late") not in open_flags(station)
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_decisions_by_hand_survive_automatic_linking(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    import_json(
        station,
        tmp_path,
        "k.json",
        [case("CASE-K", [doc("K-1", ["k1"], 0, 30), doc("K-2", ["k1"], 100, 130)])],
    )
    auto = add_clip(station, "k-auto", "k1", 5, 10)
    elsewhere = add_clip(station, "k-elsewhere", "k1", 300, 10)
    link_clip(station, auto)
    link_clip(station, elsewhere)
    assert active_links(station) == {("k-auto", "K-1", False)}

    unlinked = run_cli(
        ["cases", "unlink", str(auto), "CASE-K", "--document", "K-1", "--reason", "录像为同日另一检查"],
        station_env,
    )
    assert unlinked.code == 0, unlinked.stderr
    linked = run_cli(
        ["cases", "link", str(elsewhere), "CASE-K", "--document", "K-2", "--reason", "补录的现场画面"],
        station_env,
    )
    assert linked.code == 0, linked.stderr
    expected = {("k-elsewhere", "K-2", False)}
    assert active_links(station) == expected
    for _ in range(2):
        relink_all(station)
        link_clip(station, auto)
        link_clip(station, elsewhere)
        assert active_links(station) == expected
    with station.engine.connect() as connection:
        actions = connection.scalars(
            select(audit_events.c.action)
            .where(audit_events.c.object_type == "clip")
            .order_by(audit_events.c.seq)
        ).all()
    assert "clip.unlinked_manually" in actions and "clip.linked_manually" in actions
    # the unlinked clip is footage of no case now
    assert ("unassigned_footage", "k-auto") in open_flags(station)

    # a reason is required, and an empty one is refused
    assert run_cli(["cases", "link", str(auto), "CASE-K"], station_env).code == 2
    empty = run_cli(["cases", "link", str(auto), "CASE-K", "--reason", "  "], station_env)
    assert empty.code != 0 and "reason" in empty.stderr
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_mark_evidence_is_audited_and_kept_by_relinking(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    cases = [case("CASE-V", [doc("V-1", ["v1"], 0, 30)])]
    import_json(station, tmp_path, "v.json", cases)
    clip_id = add_clip(station, "v-clip", "v1", 5, 10)
    link_clip(station, clip_id)
    marked = run_cli(
        ["cases", "mark-evidence", str(clip_id), "CASE-V", "--reason", "证明现场存在无证经营", "--json"],
        station_env,
    )
    assert marked.code == 0, marked.stderr
    assert json.loads(marked.stdout)["is_evidence"] is True
    with station.engine.connect() as connection:
        event = connection.execute(
            select(audit_events).where(audit_events.c.action == "clip.evidence_marked")
        ).one()
        assert (
            connection.scalar(select(clip_links.c.is_evidence).where(clip_links.c.removed_at.is_(None)))
            is True
        )
    assert event.object_id == str(clip_id)
    assert json.loads(event.details)["reason"] == "证明现场存在无证经营"

    # the document's times change so that the rules no longer imply the link: the evidence link stays
    cases[0]["documents"][0] = doc("V-1", ["v1"], 600, 630)
    import_json(station, tmp_path, "v.json", cases)
    relink_all(station)
    assert active_links(station) == {("v-clip", "V-1", False)}

    unmarked = run_cli(
        ["cases", "mark-evidence", str(clip_id), "CASE-V", "--unmark", "--reason", "误标"], station_env
    )
    assert unmarked.code == 0, unmarked.stderr
    relink_all(station)  # no longer a decision by hand: the rules take the link away
    assert active_links(station) == set()
    with station.engine.connect() as connection:
        assert (
            connection.scalar(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.action == "clip.evidence_unmarked")
            )
            == 1
        )
    not_linked = run_cli(["cases", "mark-evidence", str(clip_id), "CASE-V", "--reason", "x"], station_env)
    assert not_linked.code != 0 and "not linked" in not_linked.stderr
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_a_linked_clip_handed_over_in_time_has_no_flag() -> None:
    """The flags service skips building the facts of such clips (a million of them after a full
    relink): that is right only while `clip_flags` gives them no flag, whatever else is true of them."""
    from evidence_store.domain.compliance import ClipFacts, clip_flags

    for is_media in (True, False):
        for cases in ((1,), (1, 2)):
            for end in (None, at(10)):
                for handed_over in (None, at(60)):
                    facts = ClipFacts(7, is_media, cases, False, end, handed_over)
                    assert clip_flags(facts) == []
