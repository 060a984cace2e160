"""Replica generator for WYDOT (and wydot_backup) TIM: folder hours of realistic records in their real shape.

Registered through generators(); see cvcatalog.sandbox.replica.load_generators.
"""

from __future__ import annotations

from cvcatalog.sandbox.replica import HourGenerator


def generators() -> dict[tuple[str, str], HourGenerator]:
    return {}
