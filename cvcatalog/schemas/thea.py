"""THEA (Tampa) BSM, TIM and SPAT: strings in raw J2735 units, [ET] local timestamps.

Filled in by the THEA work: return the MessageSchema objects of this family.
"""

from __future__ import annotations

from cvcatalog.schemas.base import MessageSchema


def schemas() -> list[MessageSchema]:
    return []
