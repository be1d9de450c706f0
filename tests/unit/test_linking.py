"""R5 linking: the sweep equals the clips x documents definition; reconciling is idempotent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from evidence_store.domain.linking import (
    AutoLink,
    ClipSpan,
    DocumentWindow,
    link_clips,
    link_naively,
    link_one_clip,
    reconcile,
)

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def clip(
    cid: int, officer: int | None, start_min: float | None, length_min: float = 10, known: bool = True
) -> ClipSpan:
    start = T0 + start_min * MIN if start_min is not None else None
    return ClipSpan(cid, officer, start, start + length_min * MIN if start else None, known)


def doc(
    did: int, officers: tuple[int, ...], start_min: float | None, end_min: float | None, case: int = 1
) -> DocumentWindow:
    return DocumentWindow(
        did,
        case,
        officers,
        T0 + start_min * MIN if start_min is not None else None,
        T0 + end_min * MIN if end_min is not None else None,
    )


def test_same_officer_and_overlap_links() -> None:
    links = link_clips([clip(1, 7, 0)], [doc(10, (7, 8), 5, 30)])
    assert links == {AutoLink(1, 10, 1, False)}


def test_another_officer_does_not_link() -> None:
    assert link_clips([clip(1, 9, 0)], [doc(10, (7, 8), 5, 30)]) == set()


def test_tolerance_is_five_minutes_by_default() -> None:
    # clip ends at 10; document starts at 15 (5 minutes later: links) or 15.1 (does not)
    assert link_clips([clip(1, 7, 0)], [doc(10, (7,), 15, 30)])
    assert not link_clips([clip(1, 7, 0)], [doc(10, (7,), 15.1, 30)])
    assert link_clips([clip(1, 7, 0)], [doc(10, (7,), 15.1, 30)], tolerance=timedelta(minutes=6))


def test_a_document_without_an_end_is_a_moment() -> None:
    assert link_clips([clip(1, 7, 0)], [doc(10, (7,), 12, None)])
    assert not link_clips([clip(1, 7, 0)], [doc(10, (7,), 16, None)])


def test_unplaced_clips_and_undated_documents_link_nothing() -> None:
    assert (
        link_clips([clip(1, None, 0), clip(2, 7, None)], [doc(10, (7,), 0, 30), doc(11, (7,), None, None)])
        == set()
    )


def test_a_clip_with_an_unknown_clock_links_as_uncertain() -> None:
    assert link_clips([clip(1, 7, 0, known=False)], [doc(10, (7,), 0, 30)]) == {AutoLink(1, 10, 1, True)}


def test_a_long_clip_does_not_make_a_short_later_clip_link_to_a_far_document() -> None:
    clips = [clip(1, 7, 0, length_min=600), clip(2, 7, 10, length_min=5)]
    docs = [doc(10, (7,), 300, 320)]
    assert link_clips(clips, docs) == {AutoLink(1, 10, 1, False)}


def test_overlapping_documents_both_link() -> None:
    assert {
        link.document_id
        for link in link_clips([clip(1, 7, 0, 60)], [doc(10, (7,), 0, 30), doc(11, (7,), 20, 50)])
    } == {10, 11}


spans = st.builds(
    clip,
    cid=st.integers(0, 10_000),
    officer=st.one_of(st.none(), st.integers(1, 4)),
    start_min=st.one_of(st.none(), st.floats(0, 600, allow_nan=False)),
    length_min=st.floats(0, 120, allow_nan=False),
    known=st.booleans(),
)
windows = st.builds(
    doc,
    did=st.integers(0, 10_000),
    officers=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    start_min=st.one_of(st.none(), st.floats(0, 600, allow_nan=False)),
    end_min=st.one_of(st.none(), st.floats(0, 800, allow_nan=False)),
    case=st.integers(1, 3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(spans, max_size=30, unique_by=lambda c: c.clip_id),
    st.lists(windows, max_size=20, unique_by=lambda d: d.document_id),
)
def test_the_sweep_equals_the_definition(clips: list[ClipSpan], docs: list[DocumentWindow]) -> None:
    docs = [d for d in docs if d.end is None or d.start is None or d.end >= d.start]
    assert link_clips(clips, docs) == link_naively(clips, docs)
    for c in clips:
        assert link_one_clip(c, docs) == {
            link for link in link_naively(clips, docs) if link.clip_id == c.clip_id
        }


def test_the_sweep_on_a_larger_random_set() -> None:
    rng = random.Random(5)
    clips = [clip(i, rng.randint(1, 20), rng.uniform(0, 10_000), rng.uniform(0, 60)) for i in range(2000)]
    docs = [
        doc(i, (rng.randint(1, 20), rng.randint(1, 20)), s := rng.uniform(0, 10_000), s + rng.uniform(0, 90))
        for i in range(500)
    ]
    assert link_clips(clips, docs) == link_naively(clips, docs)


def test_reconcile_adds_removes_and_then_changes_nothing() -> None:
    wanted = {AutoLink(1, 10, 1, False), AutoLink(2, 10, 1, True)}
    existing = {(3, 10, False), (2, 10, False)}
    change = reconcile(wanted, existing, manually_decided=set())
    assert change.add == {AutoLink(1, 10, 1, False), AutoLink(2, 10, 1, True)}
    assert change.remove == {(3, 10), (2, 10)}
    after = {(link.clip_id, link.document_id, link.uncertain) for link in wanted}
    again = reconcile(wanted, after, manually_decided=set())
    assert not again.add and not again.remove


def test_reconcile_never_touches_manual_decisions() -> None:
    change = reconcile({AutoLink(1, 10, 1, False)}, {(2, 11, False)}, manually_decided={(1, 10), (2, 11)})
    assert not change.add and not change.remove
