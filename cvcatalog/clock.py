"""The time every state row is stamped with and a relative date range counts back from (UTC,
timezone-aware); a module of its own at the bottom of the layers, so the configuration and
the modules that own state tables need not import the catalog database's."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)
