"""WYDOT (and wydot_backup) Traveler Information Messages.

Filled in by the WYDOT TIM work: return the MessageSchema objects of this family.
"""

from __future__ import annotations

from cvcatalog.schemas.base import MessageSchema


def schemas() -> list[MessageSchema]:
    return []
