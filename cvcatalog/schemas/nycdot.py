"""NYCDOT EVENT records: obfuscated events binned by month, weekday and time of day.

Filled in by the NYCDOT work: return the MessageSchema objects of this family.
"""

from __future__ import annotations

from cvcatalog.schemas.base import MessageSchema


def schemas() -> list[MessageSchema]:
    return []
