"""Column types that keep SQLite and PostgreSQL equivalent."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String, TypeDecorator
from sqlalchemy import Enum as SAEnum

from evidence_store.domain.model import RecordWarning


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where a UTC time is stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NaiveDateTime(TypeDecorator[datetime]):
    """A time as a recorder's own clock reported it: no zone, stored as given."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("device-reported times are stored exactly as the device gave them (naive)")
        return value


class WarningList(TypeDecorator[list[RecordWarning]]):
    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: list[RecordWarning] | None, dialect: Dialect) -> Any:
        return [{"code": w.code, "message": w.message} for w in (value or [])]

    def process_result_value(self, value: Any, dialect: Dialect) -> list[RecordWarning]:
        return [RecordWarning(item["code"], item["message"]) for item in (value or [])]


def enum_column(enum_class: type[enum.Enum]) -> SAEnum:
    """Store an enum by its value as a checked string (no native enum types to migrate)."""
    return SAEnum(
        enum_class,
        native_enum=False,
        values_callable=lambda members: [m.value for m in members],
        length=32,
        validate_strings=True,
    )


HASH = String(64)
