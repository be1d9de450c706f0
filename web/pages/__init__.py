"""The server-rendered pages (Jinja2), one module per area. Every string comes from the message
catalogue (`web.i18n`)."""

from fastapi import APIRouter

from web.pages import (
    admin,
    cases,
    disclosures,
    exports,
    footage,
    redaction,
    reports,
    signin,
    station,
    supervision,
)

router = APIRouter(include_in_schema=False)
for area in (signin, footage, redaction, cases, exports, disclosures, reports, station, supervision, admin):
    router.include_router(area.router)
