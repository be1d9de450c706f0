"""The worker process: the module `evidence worker` hands to dramatiq (`dramatiq entrypoints.worker`).

Dramatiq imports it in each of its worker processes. Importing it reads the settings, installs their
Redis broker as dramatiq's broker and declares the processing actors on it, run against this process's
station and media tools (opened on first use). Nothing below the entry layer reads settings or installs
a broker.
"""

from __future__ import annotations

from entrypoints.wiring import worker_actors
from evidence_store.settings import load_settings

actors = worker_actors(load_settings())
broker = actors.broker
