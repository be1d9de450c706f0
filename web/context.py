"""Per-request context: the signed-in user, language, client address, audit and refusal helpers.

Routes raise the project's errors (`evidence_store.errors`); `web.errors` answers them, one way for the
pages and one for the API."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from evidence_store.bootstrap import Station
from evidence_store.cases.kinds import KindTable, load_kinds
from evidence_store.domain.access import AccessRefused, Permission, User
from evidence_store.errors import InputError
from evidence_store.ports import DerivativeCutter
from web.auth import ActiveSession, ConfigCache, load_session
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate
from web.readable import Readable

SESSION_COOKIE = "evidence_session"
LOGIN_CSRF_COOKIE = "evidence_login_csrf"
LANG_COOKIE = "lang"
TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")


class NeedLogin(Exception):
    """No valid session: HTTP flow only (a redirect to the login page, or 401 from the API), so it is not
    one of the project's errors, which the services raise and know nothing of sessions."""


INPUT_ERROR_ANSWER = "input_error_answer"  # request.state attribute: how a page answers an InputError


class SeenCache:
    """Which (session, clip, kind) accesses were audited recently: a video fetches its proxy in many
    Range requests and a result page shows many thumbnails, and one audit event per session, clip and
    kind within `window_s` records them all. Bounded (oldest entries go first); per process."""

    def __init__(self, window_s: float = 600.0, max_entries: int = 100_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: tuple[str, int, str]) -> bool:
        """True (and remembered) if this access was not recorded within the window."""
        now = time.monotonic()
        with self._lock:
            seen = self._entries.get(key)
            if seen is not None and now - seen < self.window_s:
                return False
            self._remember(key, now)
            return True

    def mark(self, key: tuple[str, int, str]) -> None:
        with self._lock:
            self._remember(key, time.monotonic())

    def _remember(self, key: tuple[str, int, str], now: float) -> None:
        self._entries[key] = now
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


@dataclass
class Web:
    station: Station
    config: ConfigCache
    templates: Jinja2Templates
    seen: SeenCache
    cutter: DerivativeCutter | None = None  # cuts export segments; the entry layer wires ffmpeg's

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.station.settings.timezone)

    @cached_property
    def kinds(self) -> KindTable:
        """The station's document kinds (shipped table and its own file), read once per process."""
        return load_kinds(self.station.settings.home)


# The instants a filter may name: a day inside Python's datetime range, so that showing one in any time
# zone still works. Times the station stores are far inside; a filter beyond them selects the same rows.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def utc_instant(moment: datetime) -> datetime:
    """An aware time as UTC, held within `EARLIEST`..`LATEST` (`0001-01-01T00:00+01:00` is a real
    instant before year 1 UTC: a filter from it means "from the beginning")."""
    try:
        converted = moment.astimezone(UTC)
    except OverflowError:
        converted = EARLIEST if moment.year < 5000 else LATEST
    return min(max(converted, EARLIEST), LATEST)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_of(request: Request) -> ActiveSession | None:
    """The request's valid session (looked up once per request)."""
    if hasattr(request.state, "active_session"):
        return request.state.active_session  # type: ignore[no-any-return]
    web: Web = request.app.state.web
    token = request.cookies.get(SESSION_COOKIE, "")
    active = (
        load_session(web.station, web.config.get(), token, client=client_address(request)) if token else None
    )
    request.state.active_session = active
    return active


class Ctx:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.web: Web = request.app.state.web
        self.station = self.web.station
        self.session = session_of(request)
        self.client = client_address(request)
        lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANGUAGE)
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self.is_api = request.url.path.startswith("/api/")

    @property
    def user(self) -> User:
        if self.session is None:
            raise NeedLogin
        return self.session.user

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""

    def t(self, key: str, **values: Any) -> str:
        return translate(self.lang, key, **values)

    @cached_property
    def readable(self) -> Readable:
        """Codes, flags and events as people read them, in this request's language and the station's zone."""
        return Readable(self.lang, self.web.zone, self.web.kinds)

    def now(self) -> datetime:
        moment: datetime = self.station.clock()
        return moment

    def audit(self, action: str, object_type: str, object_id: str | int, details: dict[str, Any]) -> None:
        actor = self.session.user.actor if self.session else "web:anonymous"
        with self.station.transaction() as session:
            self.station.audit.record(
                session,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                details=details,
                source=self.client,
            )

    def deny(
        self,
        *,
        reason: str,
        permission: Permission | None = None,
        object_type: str = "web",
        object_id: str | int | None = None,
        hidden: bool = False,
    ) -> NoReturn:
        """Refuse (R11, R13); `web.errors` puts the refusal on the audit record (R17) and answers 403, or
        404 when `hidden` (whether the object exists must not show)."""
        raise AccessRefused(
            reason, permission=permission, object_type=object_type, object_id=object_id, hidden=hidden
        )

    def require(self, permission: Permission) -> User:
        user = self.user
        if not user.can(permission):
            self.deny(reason="role", permission=permission)
        return user

    def hidden(self, object_type: str, object_id: int | str, *, missing: bool) -> NoReturn:
        """Something the user asked for by id that is not there or not for them: 404 either way."""
        self.deny(
            reason="missing" if missing else "confidential",
            object_type=object_type,
            object_id=object_id,
            hidden=True,
        )

    def on_input_error(self, answer: Callable[[str], Response]) -> None:
        """How this page answers an `InputError` (given its message): the form shown again with the
        message, or a redirect back to where the form was. Without it, the error page (400)."""
        setattr(self.request.state, INPUT_ERROR_ANSWER, answer)

    def on_input_error_go_to(self, target: str) -> None:
        """Answer an `InputError` by a redirect to `target` with the message as `error` parameter."""
        separator = "&" if "?" in target else "?"
        self.on_input_error(
            lambda message: RedirectResponse(
                f"{target}{separator}{urlencode({'error': message})}", status_code=303
            )
        )

    def local(self, moment: datetime | str | None) -> str:
        """A time in the station's zone; also an ISO text, as the export workflow describes its times."""
        if moment is None or moment == "":
            return ""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.web.zone).strftime("%Y-%m-%d %H:%M:%S")

    def parse_time(self, text: str | None) -> datetime | None:
        """A time from a form or query: ISO 8601; without a zone it is the station's local time."""
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise InputError(self.t("error.bad_time", value=text[:40])) from exc
        return self.instant(moment)

    def instant(self, moment: datetime | None) -> datetime | None:
        """A time given by the user as UTC; without a zone it is the station's local time."""
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.web.zone)
        return utc_instant(moment)


def get_ctx(request: Request) -> Ctx:
    return Ctx(request)


def user_ctx(request: Request) -> Ctx:
    ctx = Ctx(request)
    if ctx.session is None:
        raise NeedLogin
    return ctx


def need(permission: Permission) -> Callable[[Request], Ctx]:
    """A dependency: the signed-in user's context, after checking the permission (and auditing a
    refusal) before anything of the request body is looked at."""

    def dependency(request: Request) -> Ctx:
        ctx = user_ctx(request)
        ctx.require(permission)
        return ctx

    return dependency
