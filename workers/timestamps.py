"""Choosing the time-stamping authority from the settings (R3)."""

from __future__ import annotations

from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.errors import ConfigurationError


def authority_for(station: Station) -> Any:
    """An RFC 3161 TSA when one is configured, else time-stamps signed with the station key."""
    # lazy: the RFC 3161 client loads only in a process that time-stamps
    from evidence_store.timestamping import Rfc3161Authority, StationSignedAuthority

    settings = station.settings
    if not settings.tsa_url:
        return StationSignedAuthority(station.key, station.clock)
    try:
        ca = [settings.tsa_ca_file.read_bytes()] if settings.tsa_ca_file else []
        tsa_cert = settings.tsa_cert_file.read_bytes() if settings.tsa_cert_file else None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the TSA certificates: {exc}") from exc
    return Rfc3161Authority(settings.tsa_url, ca_certs=ca, tsa_cert=tsa_cert)
