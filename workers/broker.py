"""The dramatiq broker over Redis, from the settings (`EVIDENCE_REDIS_URL`); tests run a real Redis."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from evidence_store.settings import load_settings


def make_broker(redis_url: str) -> RedisBroker:
    # The default middleware, spelled out: Retries and TimeLimit are configured per actor.
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()],
        namespace="evidence",
    )


def install_broker() -> RedisBroker:
    broker = make_broker(load_settings().redis_url)
    dramatiq.set_broker(broker)
    return broker
