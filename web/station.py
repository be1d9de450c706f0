"""The live dock status (issue 19): the bays as the station page, the kiosk and the API show them, and
the server-sent event stream that keeps the pages current without a reload.

The dock writes each running transfer's counters to the record at most once a second
(`ingest.pull`); here they are read (`evidence_store.queries.dock_status`) and judged by the pure rules
(`evidence_store.domain.dock_status`: state, error, safe to unplug, speed and time left from samples).
The stream polls the record once a second and sends the bays, rendered in the reader's language, when
they change (and a comment line every 15 s so proxies keep the connection open). One connection lasts
at most `STREAM_SECONDS`; the browser's EventSource then reconnects by itself (`retry`), which also
checks the session again. When the server stops (`close_streams`), every stream ends within a second.

A request that does not ask for `text/event-stream` (no browser's EventSource would) gets one event and
the end of the body: what a plain HTTP client or a test reads without hanging.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from evidence_store.domain.dock_status import (
    DockState,
    Sample,
    add_sample,
    dock_error,
    dock_state,
    eta_seconds,
    files_verified,
    fraction,
    safe_to_unplug,
    speed,
)
from evidence_store.queries.dock_status import Bay, station_bays
from web.context import Ctx

POLL_SECONDS = 1.0
_closing = threading.Event()  # the server is stopping: every stream ends at its next poll
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
RETRY_MS = 2000


@dataclass
class Samples:
    """(monotonic time, bytes done) of each transfer as this reader saw it: its speed and time left."""

    by_transfer: dict[int, list[Sample]] = field(default_factory=dict)

    def add(self, bay: Bay, at: float) -> list[Sample]:
        samples = add_sample(self.by_transfer.get(bay.transfer_id, []), Sample(at, bay.facts.bytes_done))
        self.by_transfer[bay.transfer_id] = samples
        return samples


def first_samples(bay: Bay, ctx: Ctx, at: float) -> list[Sample]:
    """Before a reader has seen a transfer move: its average since it started."""
    elapsed = (ctx.now() - bay.started_at).total_seconds()
    if elapsed <= 0:
        return [Sample(at, bay.facts.bytes_done)]
    return [Sample(at - elapsed, 0), Sample(at, bay.facts.bytes_done)]


def bay_view(bay: Bay, samples: list[Sample]) -> dict[str, Any]:
    """One bay as plain data (the API's answer and what the templates show)."""
    facts = bay.facts
    state = dock_state(facts)
    running = state in (DockState.WAITING, DockState.COPYING, DockState.VERIFYING)
    rate = speed(samples) if running else None
    error = dock_error(facts)
    return {
        "transfer_id": bay.transfer_id,
        "dock_station": bay.dock_station,
        "source": bay.source,
        "volume_label": bay.volume_label,
        "device_serial": bay.device_serial,
        "device_model": bay.device_model,
        "officer_badge": bay.officer_badge,
        "officer_name": bay.officer_name,
        "started_at": bay.started_at.isoformat(),
        "finished_at": bay.finished_at.isoformat() if bay.finished_at else None,
        "state": state.value,
        "error": error.value if error else None,
        "files_seen": facts.files_seen,
        "files_total": facts.files_total,
        "files_verified": files_verified(facts),
        "files_failed": facts.files_failed,
        "files_in_doubt": facts.files_in_doubt,
        "bytes_done": facts.bytes_done,
        "bytes_total": facts.bytes_total,
        "fraction": fraction(facts.bytes_done, facts.bytes_total)
        if facts.bytes_total
        else fraction(facts.files_seen, facts.files_total),
        "speed_bytes_s": rate,
        "eta_s": eta_seconds(facts.bytes_done, facts.bytes_total, rate) if running else None,
        "safe_to_unplug": safe_to_unplug(facts),
        "from_device": facts.from_device,
    }


def close_streams() -> None:
    """End every open event stream (the server is stopping; uvicorn waits for open responses)."""
    _closing.set()


def read_bays(ctx: Ctx) -> list[Bay]:
    with ctx.station.connect() as connection:
        return station_bays(connection, ctx.now())


def snapshot(ctx: Ctx, samples: Samples | None = None) -> list[dict[str, Any]]:
    """The bays now; with `samples` (a stream's), each transfer's speed over what it has seen."""
    at = time.monotonic()
    views = []
    for bay in read_bays(ctx):
        if samples is not None and bay.transfer_id in samples.by_transfer:
            seen = samples.add(bay, at)
        else:
            seen = first_samples(bay, ctx, at)
            if samples is not None:
                samples.by_transfer[bay.transfer_id] = seen
        views.append(bay_view(bay, seen))
    return views


def render_bays(ctx: Ctx, bays: list[dict[str, Any]], *, kiosk: bool) -> str:
    template = ctx.web.templates.get_template("station_bays.html")
    return template.render(t=ctx.t, r=ctx.readable, lang=ctx.lang, bays=bays, kiosk=kiosk)


def sse_event(name: str, data: str) -> str:
    """One server-sent event; every line of `data` is a `data:` line."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


def event_stream(ctx: Ctx, *, kiosk: bool) -> StreamingResponse:
    """The bays as server-sent events (`bays`: the rendered list), sent when they change."""
    live = "text/event-stream" in ctx.request.headers.get("accept", "")
    request = ctx.request

    async def events() -> AsyncIterator[str]:
        samples = Samples()
        last_html = None
        started = last_sent = time.monotonic()
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            bays = await run_in_threadpool(snapshot, ctx, samples)
            html = await run_in_threadpool(render_bays, ctx, bays, kiosk=kiosk)
            now = time.monotonic()
            if html != last_html:
                last_html, last_sent = html, now
                yield sse_event("bays", html)
            elif now - last_sent >= KEEPALIVE_SECONDS:
                last_sent = now
                yield ": keep-alive\n\n"
            if not live or now - started >= STREAM_SECONDS or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)
            if _closing.is_set():
                return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
