"""A station with users of every role in two units and confidential cases, for the visibility tests
(R11, R13, R16, R17): what each user must and must not see.

    clip_a   officer 1001 (U1), linked to U1's normal case (to its document)       everyone with footage
    clip_b   officer 2002 (U2), linked to U2's personal-privacy case               U2 only
    clip_c   officer 1001, linked to U1's STATE-SECRET case and to the normal case  U1 approver/supervisor
             (link reason SECRET_REASON), handed over late
    clip_d   officer 2002, no links                                                 everyone with footage

Users: every role in U1 (user name = the role's name; the officer is badge 1001), and in U2
`supervisor-u2`, `custodian-u2`, `investigator-u2`. The U1 supervisor drew a clip sample of officer
1001 (items for clip_a and clip_c, unassigned) and a case sample of U1 (the normal and the secret case);
the U2 supervisor a clip sample of officer 2002 (clip_b and clip_d).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clip_links, clips, supervision_items, users
from evidence_store.domain.access import Role, User
from evidence_store.domain.model import Confidentiality
from evidence_store.domain.sampling import DrawRequest
from evidence_store.supervision import create_draw
from tests import factories

PASSWORD = "correct horse battery"
SECRET_REASON = "secret-link-reason-zq"
U2_USERS = ("supervisor-u2", "custodian-u2", "investigator-u2")


@dataclass
class World:
    station: Station
    clip_a: int
    clip_b: int
    clip_c: int
    clip_d: int
    case_normal: int
    case_private_u2: int
    case_state_u1: int
    document: int
    link_a: int  # clip_a to the normal case
    link_c_normal: int  # clip_c to the normal case
    clip_draw: int
    case_draw: int
    u2_draw: int  # drawn by supervisor-u2: clip_b and clip_d
    item_a: int
    item_c: int
    item_case_state: int
    item_b: int
    link_b: int  # clip_b to U2's private case
    names: dict[str, str] = field(default_factory=dict)  # object key -> a word only that object shows
    app: Any = None  # the web application, where a test shares one
    exports: dict[str, Any] = field(default_factory=dict)  # export requests, where a test adds them
    applications: dict[str, Any] = field(default_factory=dict)  # parties' applications (R15), likewise
    markers: dict[str, int] = field(default_factory=dict)  # label -> a marker on that clip


def user_of(station: Station, username: str) -> User:
    with station.engine.connect() as connection:
        row = connection.execute(select(users).where(users.c.username == username)).one()
    return User(row.id, row.username, row.display_name, Role(row.role), row.unit, row.officer_id)


def build_world(station: Station) -> World:
    o1 = factories.add_officer(station, "1001", name="officer 1001", unit="U1")
    o2 = factories.add_officer(station, "2002", name="officer 2002", unit="U2")
    device_id = factories.add_device(station, "DSJ-1", model="test")
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    clip_a = factories.ready_clip(station, o1, device_id, t0, "vis-plain-a", repeat=50)
    clip_b = factories.ready_clip(station, o2, device_id, t0 + timedelta(hours=1), "vis-private-b", repeat=50)
    clip_c = factories.ready_clip(
        station, o1, device_id, t0 + timedelta(minutes=10), "vis-secret-c", repeat=50
    )
    clip_d = factories.ready_clip(station, o2, device_id, t0 + timedelta(hours=3), "vis-plain-d", repeat=50)
    with station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == clip_c).values(late_handover=True))
    case_normal = factories.unit_case(
        station, "VIS-2026-NORMAL", "U1", Confidentiality.NORMAL, "plain inspection"
    )
    case_private = factories.unit_case(
        station, "VIS-2026-U2PRIV", "U2", Confidentiality.PERSONAL_PRIVACY, "privtitle-u2-kx"
    )
    case_state = factories.unit_case(
        station, "VIS-2026-U1STATE", "U1", Confidentiality.STATE_SECRET, "statetitle-u1-kx"
    )
    document = factories.add_document(
        station,
        "VIS-DOC-1",
        case_normal,
        kind="现场检查笔录",
        officer_ids=[o1],
        start=t0,
        end=t0 + timedelta(minutes=30),
        requires_video=True,
        indexed=False,
    )
    link_a = factories.add_link(station, clip_a, case_normal, document_id=document)
    link_b = factories.add_link(station, clip_b, case_private)
    factories.add_link(station, clip_c, case_state)
    link_c_normal = factories.add_link(station, clip_c, case_normal, reason=SECRET_REASON)
    for role in Role:
        factories.create_account(
            station,
            role.value,
            PASSWORD,
            role=role,
            unit="U1",
            officer_badge="1001" if role is Role.OFFICER else None,
        )
    for username in U2_USERS:
        factories.create_account(station, username, PASSWORD, role=username.removesuffix("-u2"), unit="U2")
    drawer = user_of(station, "supervisor")
    clip_draw = create_draw(
        station, DrawRequest(kind="clip", size=2, officer="1001", seed=11), drawer, source="test"
    )
    case_draw = create_draw(
        station, DrawRequest(kind="case", size=2, unit="U1", seed=12), drawer, source="test"
    )
    u2_draw = create_draw(
        station,
        DrawRequest(kind="clip", size=2, officer="2002", seed=13),
        user_of(station, "supervisor-u2"),
        source="test",
    )
    with station.engine.connect() as connection:
        items = {
            (r.clip_id, r.case_id): r.id
            for r in connection.execute(
                select(supervision_items.c.id, supervision_items.c.clip_id, supervision_items.c.case_id)
            )
        }
        assert connection.scalar(select(clip_links.c.id).where(clip_links.c.id == link_c_normal))
    return World(
        station=station,
        clip_a=clip_a,
        clip_b=clip_b,
        clip_c=clip_c,
        clip_d=clip_d,
        case_normal=case_normal,
        case_private_u2=case_private,
        case_state_u1=case_state,
        document=document,
        link_a=link_a,
        link_c_normal=link_c_normal,
        clip_draw=clip_draw,
        case_draw=case_draw,
        item_a=items[(clip_a, None)],
        item_c=items[(clip_c, None)],
        item_case_state=items[(None, case_state)],
        u2_draw=u2_draw,
        item_b=items[(clip_b, None)],
        link_b=link_b,
        names={
            "clip_b": "vis-private-b",
            "clip_c": "vis-secret-c",
            "case_private_u2": "VIS-2026-U2PRIV",
            "case_private_u2_title": "privtitle-u2-kx",
            "case_state_u1": "VIS-2026-U1STATE",
            "case_state_u1_title": "statetitle-u1-kx",
            "secret_reason": SECRET_REASON,
        },
    )


def secret_words(world: World, user: User) -> list[str]:
    """The words of the confidential objects this user may not see (R13)."""
    hidden: list[str] = []
    u1_secret_cleared = user.unit == "U1" and user.role in (Role.APPROVER, Role.SUPERVISOR)
    u2_private_cleared = user.unit == "U2" and user.role in (
        Role.CUSTODIAN,
        Role.INVESTIGATOR,
        Role.APPROVER,
        Role.SUPERVISOR,
    )
    if not u1_secret_cleared:
        hidden += [
            world.names[k] for k in ("clip_c", "case_state_u1", "case_state_u1_title", "secret_reason")
        ]
    if not u2_private_cleared:
        hidden += [world.names[k] for k in ("clip_b", "case_private_u2", "case_private_u2_title")]
    return hidden
