"""Acting on many clips at once from the search results (issue 19 item 4): link them to a case, place
or release a legal hold, request one export of them, tag them; one reason for all.

Each clip is checked and audited on its own, exactly as if the action had been taken on its page: a
clip the user may not see is refused as missing (and the refusal is on the audit record, R13, R17), a
clip the action does not fit (already linked, no hold to release, deleted) is refused with why, and
the other clips are done. A role without the action's permission is refused as a whole (403)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from evidence_store.annotations import add_tag
from evidence_store.case_links import link_clip
from evidence_store.db.tables import cases, legal_holds
from evidence_store.domain.access import AccessRefused, Permission, hidden_object
from evidence_store.domain.annotations import normalise_tag
from evidence_store.errors import (
    ConflictError,
    EvidenceError,
    InputError,
    NotFoundError,
    NotPermittedError,
)
from evidence_store.queries.visibility import case_facts, sees
from retention.holds import place_hold, release_hold
from web.context import Ctx
from web.errors import audit_refusal, status_and_message
from web.exports import request as request_export
from web.footage import visible_clip_row

MAX_BULK_CLIPS = 200  # one page of search results at most


class BulkAction(enum.StrEnum):
    LINK = "link"
    HOLD = "hold"
    RELEASE = "release"
    EXPORT = "export"
    TAG = "tag"


PERMISSION_OF = {
    BulkAction.LINK: Permission.CASE_LINK,
    BulkAction.HOLD: Permission.HOLD_MANAGE,
    BulkAction.RELEASE: Permission.HOLD_MANAGE,
    BulkAction.EXPORT: Permission.EXPORT_REQUEST,
    BulkAction.TAG: Permission.CLIP_ANNOTATE,
}


@dataclass
class Outcome:
    clip_id: int
    done: bool
    message: str = ""  # why a clip was refused, or what was made (the link, hold or export id)


def actions_for(ctx: Ctx) -> list[str]:
    """The bulk actions the user's role may take, in the order the page offers them."""
    return [action.value for action in BulkAction if ctx.user.can(PERMISSION_OF[action])]


def run_bulk(
    ctx: Ctx, action: str, clip_ids: list[int], *, reason: str, case_number: str = "", tag: str = ""
) -> dict[str, Any]:
    """Take one action on each clip; each outcome says done or why not."""
    try:
        chosen = BulkAction(action)
    except ValueError:
        raise InputError(f"unknown bulk action {action!r}: one of {', '.join(BulkAction)}") from None
    ctx.require(PERMISSION_OF[chosen])
    ids = list(dict.fromkeys(clip_ids))  # once each, in the order given
    if not ids:
        raise InputError("choose at least one clip")
    if len(ids) > MAX_BULK_CLIPS:
        raise InputError(f"at most {MAX_BULK_CLIPS} clips at once")
    if not reason.strip():
        raise InputError("a bulk action needs a reason (kept in the audit log for each clip)")
    case_id = _case_id(ctx, case_number) if chosen is BulkAction.LINK else None
    label = normalise_tag(tag) if chosen is BulkAction.TAG else ""
    visible: list[int] = []
    outcomes: dict[int, Outcome] = {}
    for clip_id in ids:
        outcome = _attempt(ctx, clip_id, lambda c=clip_id: visible_clip_row(ctx, c, Permission.CLIP_VIEW))
        if outcome.done:
            visible.append(clip_id)
        else:
            outcomes[clip_id] = outcome
    if chosen is BulkAction.EXPORT and visible:
        export = _attempt(
            ctx,
            visible[0],
            lambda: request_export(
                ctx, [{"clip_id": c} for c in visible], purpose=reason, recipient="", case_id=None
            ),
        )
        for clip_id in visible:
            outcomes[clip_id] = Outcome(clip_id, export.done, export.message)
    else:
        for clip_id in visible:
            outcomes[clip_id] = _attempt(
                ctx, clip_id, lambda c=clip_id: _one(ctx, chosen, c, reason, case_id, label)
            )
    ordered = [outcomes[clip_id] for clip_id in ids]
    return {
        "action": chosen.value,
        "reason": reason.strip(),
        "done": sum(o.done for o in ordered),
        "refused": sum(not o.done for o in ordered),
        "outcomes": [asdict(o) for o in ordered],
    }


def _attempt(ctx: Ctx, clip_id: int, work: Any) -> Outcome:
    """Run one clip's part; a refusal becomes that clip's outcome (and a denial its audit record)."""
    try:
        made = work()
    except (InputError, NotPermittedError, NotFoundError, ConflictError) as exc:
        if isinstance(exc, AccessRefused):
            audit_refusal(ctx.request, exc)
        return Outcome(clip_id, False, status_and_message(ctx.request, exc)[1])
    except EvidenceError as exc:  # the service's own refusals (a hold on a clip that is gone)
        return Outcome(clip_id, False, str(exc))
    return Outcome(clip_id, True, _made_text(made))


def _made_text(made: Any) -> str:
    if isinstance(made, dict) and "id" in made:
        return f"export {made['id']}"
    if isinstance(made, int | str) and not isinstance(made, bool):
        return str(made)
    return ""


def _case_id(ctx: Ctx, case_number: str) -> int:
    number = case_number.strip()
    if not number:
        raise InputError("linking needs the case number")
    with ctx.station.connect() as connection:
        found = connection.scalar(select(cases.c.id).where(cases.c.number == number))
        facts = case_facts(connection, found) if found is not None else None
    if found is None:
        raise NotFoundError(f"no case {number}")
    if facts is None or not sees(
        ctx.user, facts
    ):  # a case the user may not see is refused as missing, once (R13)
        raise hidden_object("case", found, missing=False)
    return int(found)


def _one(ctx: Ctx, action: BulkAction, clip_id: int, reason: str, case_id: int | None, tag: str) -> Any:
    user = ctx.user
    if action is BulkAction.LINK:
        assert case_id is not None
        return link_clip(ctx.station, case_id, clip_id, reason=reason, is_evidence=False, user=user)
    if action is BulkAction.HOLD:
        return place_hold(ctx.station, clip_id=clip_id, case_number=None, reason=reason, actor=user.actor)
    if action is BulkAction.RELEASE:
        with ctx.station.connect() as connection:
            holds = list(
                connection.scalars(
                    select(legal_holds.c.id).where(
                        legal_holds.c.clip_id == clip_id, legal_holds.c.released_at.is_(None)
                    )
                )
            )
        if not holds:
            raise ConflictError("no hold of this clip to release (a case's hold is released on the case)")
        for hold_id in holds:
            release_hold(ctx.station, hold_id, reason=reason, actor=user.actor)
        return ", ".join(str(h) for h in holds)
    return add_tag(ctx.station, clip_id, tag, actor=user.actor, source=ctx.client, reason=reason)
