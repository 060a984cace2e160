"""The time every state row is stamped with (UTC, timezone-aware); its own module so the
modules that own state tables need not import the catalog database's."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)
