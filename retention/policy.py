"""The retention policy as a pure function (R9, R10).

Evidence footage lives as long as its case file; all other footage at least 6 months; holds always
win; the longest applicable period wins; and a dated period once decided is never shortened without
an audited reason. The run records each kept clip's decided date as its floor (with the rule, and the
case, that gave it). When the current facts or settings give an earlier date (a category period
lowered, a case file's period changed from 30 to 10 years, an evidence link removed) the floor still
holds and the decision says so (`Decision.shortening`, "needs approval"), until a recorded, audited
`ShorteningAuthorisation` covers the clip: then the current policy's date stands, and never earlier
than 6 months after the recording ended (R9's floor holds whatever is authorised). Holds and undated
keeps (an open or permanent case file) follow the current facts, whose own changes (archiving,
releasing a hold) are audited where they are made. Nothing here reads the clock: `now` is an argument.

Dates are calendar dates: "6 months after the recording ended at T" is T moved 6 calendar months on,
same day of month and time of day, clamped to the month's last day (31 August + 6 months = 28/29
February). A clip may go from that instant on: kept while `now < earliest`, deleted when `now >= earliest`.
Years are 12 calendar months.

A compliance flag holds a clip only while it can be acted on (R8, R16). Footage linked to no case is
kept at least to the end of the filing window (R8: filed within 30 days after the act; configurable,
counted from the recording's end) and then follows the ordinary 6 months; a fact about the past (a late
handover, R1) is reported, never a reason to keep. A flag a supervisor put under review, and an item of
an open 抽查 draw, hold until that review closes. A recording without a usable time counts its periods
from its handover (`handed_over_at`); only a clip of which neither time is known is kept undated.
"""

from __future__ import annotations

import calendar
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from evidence_store.domain.model import RetentionAction, RetentionPeriod
from evidence_store.errors import ConfigurationError

MINIMUM_MONTHS = 6  # R9: footage not used as evidence is kept at least 6 months
FILING_WINDOW_DAYS = 30  # R8: records are filed into the case file within 30 days after the act


class Rule(enum.StrEnum):
    HOLD_LEGAL_CLIP = "hold:legal_hold_clip"
    HOLD_LEGAL_CASE = "hold:legal_hold_case"
    HOLD_EXPORT = "hold:export_request"
    HOLD_DISCLOSURE = "hold:disclosure_application"
    HOLD_FLAG = "hold:flag_under_review"
    HOLD_REVIEW = "hold:supervisory_review"
    HOLD_PROCESSING = "hold:processing_failed"
    EVIDENCE_OPEN_CASE = "evidence:case_not_archived"
    EVIDENCE_PERMANENT = "evidence:permanent_case_file"
    EVIDENCE_CASE_FILE = "evidence:case_file_period"
    NON_EVIDENCE = "non_evidence:minimum_period"
    FILING_WINDOW = "unassigned:filing_window"
    FLOOR = "floor:earlier_decision"
    NO_TIME = "keep:recording_time_unknown"


class PolicyError(ConfigurationError):
    """A retention setting that would break R9, or a malformed shortening authorisation (R10); refused
    at start, never silently applied."""


@dataclass(frozen=True)
class RetentionSettings:
    non_evidence_months: int = MINIMUM_MONTHS
    months_by_category: Mapping[str, int] = field(default_factory=dict)
    filing_window_days: int = FILING_WINDOW_DAYS

    def __post_init__(self) -> None:
        if self.filing_window_days < 1:
            raise PolicyError(f"a filing window of {self.filing_window_days} days is not a window (R8)")
        if self.non_evidence_months < MINIMUM_MONTHS:
            raise PolicyError(
                f"non-evidence retention of {self.non_evidence_months} months is below the legal minimum of "
                f"{MINIMUM_MONTHS} months (R9)"
            )
        for category, months in self.months_by_category.items():
            if months < MINIMUM_MONTHS:
                raise PolicyError(
                    f"retention for category {category} of {months} months is below the legal minimum of "
                    f"{MINIMUM_MONTHS} months (R9)"
                )

    def months_for(self, categories: Iterable[str]) -> int:
        return max([self.non_evidence_months, *(self.months_by_category.get(c, 0) for c in categories)])

    @property
    def version(self) -> str:
        """A short digest naming this policy, recorded on every decision and tombstone."""
        text = json.dumps(
            {
                "non_evidence_months": self.non_evidence_months,
                "by_category": dict(sorted(self.months_by_category.items())),
                "filing_window_days": self.filing_window_days,
                "rules": "r9-v2",
            },
            sort_keys=True,
        )
        return "r9-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ClipFacts:
    """What retention needs of one clip, plain."""

    clip_id: int
    recording_end: datetime | None  # corrected UTC end (or start) of the recording
    processing_failed: bool = False
    flag_under_review: bool = False  # a compliance flag about it is under a supervisor's review
    under_review: bool = False  # an item of an open 抽查 draw names it or its case (R16)
    unassigned: bool = False  # linked to no case: held for the filing window (R8)
    late_handover: bool = False  # R1, reported only: a fact about the past is no reason to keep
    handed_over_at: datetime | None = None  # when it reached the station: the start of last resort
    export_pending: bool = False  # an export request pending or approved includes it
    disclosure_pending: bool = False  # a party's application (R15) not yet answered names it
    legal_hold: bool = False
    floor: datetime | None = None  # the latest dated earliest-delete ever decided for it
    floor_rule: str | None = None  # the rule that gave the floor its date
    floor_case_id: int | None = None  # the case whose case-file period gave it, if one did


@dataclass(frozen=True)
class LinkFacts:
    clip_id: int
    case_id: int
    is_evidence: bool


@dataclass(frozen=True)
class CaseFacts:
    case_id: int
    category: str
    archived_at: datetime | None
    retention_period: RetentionPeriod
    legal_hold: bool = False


@dataclass(frozen=True)
class ShorteningAuthorisation:
    """A recorded, audited permission (R9, R10) to let clips go earlier than an earlier decision said.

    It names exactly one scope: one clip; the clips whose decided date came from one case's case-file
    period (a case whose period was changed from 30 to 10 years); or the clips whose decided date came
    from one rule (a category period lowered in the settings: `non_evidence:minimum_period`).
    """

    authorisation_id: int
    reason: str
    clip_id: int | None = None
    case_id: int | None = None
    rule: str | None = None

    def __post_init__(self) -> None:
        scopes = [s for s in (self.clip_id, self.case_id, self.rule) if s is not None]
        if len(scopes) != 1:
            raise PolicyError("a shortening authorisation names exactly one clip, case or rule")
        if not self.reason.strip():
            raise PolicyError("a shortening authorisation needs a reason (R10)")

    def covers(self, clip: ClipFacts) -> bool:
        if self.clip_id is not None:
            return clip.clip_id == self.clip_id
        if self.case_id is not None:
            return clip.floor_case_id == self.case_id
        return clip.floor_rule == self.rule


@dataclass(frozen=True)
class Shortening:
    """The current policy gives an earlier date than the clip's recorded floor."""

    previous: datetime | None  # the floor: the date an earlier decision kept it until; None: for ever
    policy: datetime  # what the current facts and settings alone give (never below 6 months)
    authorisation_id: int | None  # None: not authorised, the floor holds ("needs approval")


@dataclass(frozen=True)
class Decision:
    clip_id: int
    action: RetentionAction
    rule: Rule
    earliest_delete_at: datetime | None  # None: no date yet (a hold, an open or permanent case)
    reasons: tuple[str, ...] = ()
    case_id: int | None = None  # the case whose case-file period gave the date, if one did
    shortening: Shortening | None = None


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months on, clamped to the last day of the target month."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


_PERIOD_MONTHS = {RetentionPeriod.YEARS_10: 120, RetentionPeriod.YEARS_30: 360}


def decide_one(
    clip: ClipFacts,
    links: Iterable[LinkFacts],
    cases: Mapping[int, CaseFacts],
    settings: RetentionSettings,
    now: datetime,
    authorisations: Iterable[ShorteningAuthorisation] = (),
) -> Decision:
    """R8/R9/R10 for one clip: keep or delete, the rule that decided, and the earliest date it may go.

    Holds (legal, export, a review still open) win undated. Otherwise the longest applicable period
    wins: evidence with its case file, 6 months (or the category's period) from the recording's end
    (from the handover when the recording time is unknown), and for footage linked to no case the R8
    filing window. A late handover is given as a reason, never as a period. A recorded floor longer
    than that is kept (rule `FLOOR`, with the shortening reported) unless one of `authorisations`
    covers the clip (R10: never shortened without an audited reason); the 6-month minimum of R9 is
    never undercut, authorised or not.
    """
    links = [link for link in links if link.clip_id == clip.clip_id]
    linked_cases = [cases[link.case_id] for link in links if link.case_id in cases]
    holds = _holds(clip, linked_cases)
    if holds:
        return Decision(clip.clip_id, RetentionAction.KEEP, holds[0][0], None, tuple(r for _, r in holds))

    # (until or None for no end date, rule, reason, the case that gave it)
    candidates: list[tuple[datetime | None, Rule, str, int | None]] = []
    for link in links:
        case = cases.get(link.case_id)
        if not link.is_evidence or case is None:
            continue
        if case.retention_period is RetentionPeriod.PERMANENT:
            candidates.append(
                (
                    None,
                    Rule.EVIDENCE_PERMANENT,
                    f"evidence in case {case.case_id}, kept permanently",
                    case.case_id,
                )
            )
        elif case.archived_at is None:
            candidates.append(
                (None, Rule.EVIDENCE_OPEN_CASE, f"evidence in case {case.case_id}, not yet archived", None)
            )
        else:
            until = add_months(case.archived_at, _PERIOD_MONTHS[case.retention_period])
            candidates.append(
                (
                    until,
                    Rule.EVIDENCE_CASE_FILE,
                    f"evidence in case {case.case_id}: archived plus {case.retention_period}",
                    case.case_id,
                )
            )
    minimum: datetime | None = None
    start, start_note = _period_start(clip)
    if start is None:
        candidates.append(
            (
                None,
                Rule.NO_TIME,
                "neither the recording time nor the handover time is known: no period can start",
                None,
            )
        )
    else:
        minimum = add_months(start, MINIMUM_MONTHS)
        months = (
            settings.months_for(c.category for c in linked_cases)
            if linked_cases
            else settings.non_evidence_months
        )
        candidates.append(
            (
                minimum if months == MINIMUM_MONTHS else add_months(start, months),
                Rule.NON_EVIDENCE,
                f"{months} months after {start_note}",
                None,
            )
        )
        if clip.unassigned:
            window_end = start + timedelta(days=settings.filing_window_days)
            candidates.append(
                (
                    window_end,
                    Rule.FILING_WINDOW,
                    f"linked to no case: held for filing (R8), {settings.filing_window_days} days after "
                    "the act",
                    None,
                )
            )

    forever = [c for c in candidates if c[0] is None]
    if forever:
        _until, rule, _reason, forever_case = forever[0]
        return Decision(
            clip.clip_id, RetentionAction.KEEP, rule, None, tuple(c[2] for c in forever), forever_case
        )
    assert minimum is not None  # a dated outcome needs a start
    dated = [(until, rule, case_id) for until, rule, _, case_id in candidates if until is not None]
    policy_until, rule, case_id = max(dated, key=lambda c: c[0])  # first of equals: evidence before R9
    reasons = [c[2] for c in candidates]
    if clip.late_handover:
        reasons.append("handed over late (R1): reported and counted, no reason to keep")
    return _against_floor(clip, now, policy_until, minimum, rule, case_id, reasons, authorisations)


def _against_floor(
    clip: ClipFacts,
    now: datetime,
    policy_until: datetime,
    minimum: datetime,
    rule: Rule,
    case_id: int | None,
    reasons: list[str],
    authorisations: Iterable[ShorteningAuthorisation],
) -> Decision:
    """R10: the dated outcome of the current policy against the clip's recorded floor. A shorter date
    than an earlier decision's (or any date, after a permanent keep) holds only under an authorisation
    that covers the clip, and never below R9's 6 months."""
    kept_for_ever = clip.floor_rule == Rule.EVIDENCE_PERMANENT.value
    if not kept_for_ever and (clip.floor is None or clip.floor <= policy_until):
        action = RetentionAction.DELETE if now >= policy_until else RetentionAction.KEEP
        return Decision(clip.clip_id, action, rule, policy_until, tuple(reasons), case_id)
    previous = None if kept_for_ever else clip.floor
    if previous is not None and now >= previous:
        # the earlier decision's own date has come too: the clip may go, nothing is shortened (no
        # approval to ask for, no authorisation spent on it)
        reasons.append("an earlier decision kept it until then, a date now past")
        return Decision(
            clip.clip_id, RetentionAction.DELETE, Rule.FLOOR, previous, tuple(reasons), clip.floor_case_id
        )
    covering = next((a for a in authorisations if a.covers(clip)), None)
    if covering is None:
        reasons.append(
            f"an earlier decision kept it {'permanently' if previous is None else 'until then'}; "
            "shortening needs approval"
        )
        shortening = Shortening(previous, policy_until, None)
        return Decision(
            clip.clip_id,
            RetentionAction.KEEP,
            Rule.FLOOR,
            previous,
            tuple(reasons),
            clip.floor_case_id,
            shortening,
        )
    until = max(policy_until, minimum)  # R9: never below 6 months, whatever is authorised
    reasons.append(
        f"shortened from {'permanent' if previous is None else previous.isoformat()} under "
        f"authorisation {covering.authorisation_id}: {covering.reason}"
    )
    action = RetentionAction.DELETE if now >= until else RetentionAction.KEEP
    return Decision(
        clip.clip_id,
        action,
        rule,
        until,
        tuple(reasons),
        case_id,
        Shortening(previous, until, covering.authorisation_id),
    )


def _period_start(clip: ClipFacts) -> tuple[datetime | None, str]:
    """R9's 6 months run from the end of the recording; for a recording without a usable time, from its
    handover (the latest moment it can have been made), so that no clip is kept for ever by default."""
    if clip.recording_end is not None:
        return clip.recording_end, "the recording ended"
    if clip.handed_over_at is not None:
        return clip.handed_over_at, "its handover (the recording time is unknown)"
    return None, ""


def _holds(clip: ClipFacts, linked_cases: list[CaseFacts]) -> list[tuple[Rule, str]]:
    holds: list[tuple[Rule, str]] = []
    if clip.legal_hold:
        holds.append((Rule.HOLD_LEGAL_CLIP, "legal hold on the clip"))
    holds.extend(
        (Rule.HOLD_LEGAL_CASE, f"legal hold on case {c.case_id}") for c in linked_cases if c.legal_hold
    )
    if clip.export_pending:
        holds.append((Rule.HOLD_EXPORT, "an export request is pending or approved"))
    if clip.disclosure_pending:
        # R15: a party asked to read or copy it; deleting it first would answer the application by default
        holds.append((Rule.HOLD_DISCLOSURE, "a party's application to read or copy it is not yet answered"))
    if clip.flag_under_review:
        holds.append((Rule.HOLD_FLAG, "a compliance flag about it is under review, until the review closes"))
    if clip.under_review:
        holds.append((Rule.HOLD_REVIEW, "an item of an open 抽查 draw (R16), until the review closes"))
    if clip.processing_failed:
        holds.append((Rule.HOLD_PROCESSING, "its processing failed"))
    return holds


def decide(
    clips: Iterable[ClipFacts],
    links: Iterable[LinkFacts],
    cases: Mapping[int, CaseFacts],
    settings: RetentionSettings,
    now: datetime,
    authorisations: Iterable[ShorteningAuthorisation] = (),
) -> list[Decision]:
    """R9/R10 for every clip given (`decide_one` for each; links grouped once). The run applies it to
    one batch of clips at a time, so the facts given need only cover that batch."""
    by_clip: dict[int, list[LinkFacts]] = {}
    for link in links:
        by_clip.setdefault(link.clip_id, []).append(link)
    granted = tuple(authorisations)
    return [decide_one(clip, by_clip.get(clip.clip_id, []), cases, settings, now, granted) for clip in clips]
