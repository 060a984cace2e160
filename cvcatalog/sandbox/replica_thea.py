"""Replica generator for THEA BSM, TIM and SPAT: folder hours of realistic records in their real shape.

Registered through generators(); see cvcatalog.sandbox.replica.load_generators.
"""

from __future__ import annotations

from cvcatalog.sandbox.replica import HourGenerator


def generators() -> dict[tuple[str, str], HourGenerator]:
    return {}
