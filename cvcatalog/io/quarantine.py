"""Quarantine entries: one shape for every source, written and read here.

A quarantine file (``quarantine/source=.../*.ndjson``) holds one JSON object per rejected line
or record, whatever the source:

``source_key``
    what the line came from: the S3 key of a CV Pilot object, the URI of an NGSIM input; null
    when no one object can be named (a partition's malformed-line count mismatch)
``line``
    its 1-based line number in ``source_key``, or null when that cannot be known: a record
    DuckDB read (an invalid record), a line of an input cut into byte ranges (NGSIM: a unit
    does not know how many lines come before it; ``byte_offset`` says where the line is)
``reason``
    why, as ``<category>: <detail>`` for every source (the category is what reports count:
    a CV Pilot reason's kind, e.g. ``malformed JSON``; a dataset's rule, e.g. ``field_count``)
``raw``
    the line as published (UTF-8; bytes that are not UTF-8 read as U+FFFD here, and are kept
    exactly in ``raw_base64``)

and, when they apply: ``raw_base64`` (the exact bytes of a line that is not UTF-8),
``raw_size`` (the full length of a line whose ``raw`` is cut to its first bytes),
``byte_offset`` (where the line starts in ``source_key``), ``rule`` (the dataset rule it broke,
as ``validation_reports`` counts it) and ``unit`` (the id of the unit the line was read in).

NGSIM loads of earlier releases wrote ``{"rule", "reason", "line": <the text>, "unit"}``;
:func:`read_entry` reads those as this shape (``source_key`` from the unit id, ``raw`` the
text, ``line`` null, ``reason`` prefixed with its rule), so catalogs keep every entry they
hold.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["entry_line", "read_entries", "read_entry", "reason_category", "with_category"]


def entry_line(
    source_key: str | None,
    line: int | None,
    reason: str,
    raw: str | bytes | None,
    raw_size: int | None = None,
    **extra: Any,
) -> str:
    """One entry as its NDJSON line (newline included); extra: the optional fields that apply
    (byte_offset, rule, unit)."""
    entry: dict[str, Any] = {"source_key": source_key, "line": line, "reason": reason}
    if isinstance(raw, bytes):
        try:
            entry["raw"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["raw"] = raw.decode("utf-8", errors="replace")
            entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
    else:
        entry["raw"] = raw
    if raw_size is not None:
        entry["raw_size"] = raw_size
    entry.update(extra)
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def reason_category(reason: str) -> str:
    """The reason without its detail: 'unparseable timestamp: x' -> 'unparseable timestamp'."""
    return reason.split(": ", 1)[0]


def with_category(category: str, detail: str) -> str:
    """A reason as every entry gives it: ``<category>: <detail>`` (the detail alone when there
    is no category; a detail that already starts with its category kept as it is)."""
    if not category or detail.startswith(f"{category}:"):
        return detail
    return f"{category}: {detail}"


def read_entry(text: str) -> dict[str, Any]:
    """One NDJSON line of a quarantine file as an entry of the one shape, an NGSIM entry of an
    earlier release (`line` holding the text, no `source_key`) included."""
    entry: dict[str, Any] = json.loads(text)
    if "source_key" not in entry and "unit" in entry and isinstance(entry.get("line"), str):
        unit = str(entry["unit"])
        uri, sep, _ = unit.rpartition("#")  # a unit id is '<input uri>#<start>-<end>'
        return {
            "source_key": uri if sep else None,
            "line": None,
            "reason": with_category(str(entry.get("rule") or ""), str(entry.get("reason") or "")),
            "raw": entry["line"],
            **{k: v for k, v in entry.items() if k not in ("line", "reason")},
        }
    return entry


def read_entries(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every entry of a local quarantine file (:func:`read_entry`), in file order."""
    with open(path, encoding="utf-8") as fh:
        for text in fh:
            if text.strip():
                yield read_entry(text)
