"""The dramatiq broker over Redis. Made here, chosen and installed by the entry layer
(`entrypoints/wiring.py`) from the settings (`EVIDENCE_REDIS_URL`); tests run a real Redis."""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

NAMESPACE = "evidence"


def make_broker(redis_url: str) -> RedisBroker:
    # The default middleware, spelled out: Retries and TimeLimit are configured per actor.
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()],
        namespace=NAMESPACE,
    )
