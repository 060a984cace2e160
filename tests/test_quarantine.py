"""Quarantine entries have one shape whatever the source (cvcatalog.io.quarantine): source_key,
line (a number or null), reason, raw; NGSIM files written by earlier releases read as it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cvcatalog.datasets.base import Rejects, WorkUnit
from cvcatalog.io.quarantine import entry_line, read_entries, reason_category

URI = "/data/ngsim/trajectories.csv"
UNIT = WorkUnit(f"{URI}#1048576-2097152", URI, 1048576, 2097152, "v1", 9 << 20, None, 1)


def test_an_ngsim_reject_is_an_entry_of_the_cv_shape(tmp_path: Path) -> None:
    """NGSIM wrote {"rule", "reason", "line": <the text>, "unit"}: `line` was the text where a
    CV entry has a line number, and there was no source_key; bytes that are not UTF-8 were
    replaced (lost), where a CV entry keeps them in raw_base64."""
    rejects = Rejects(tmp_path / "q.ndjson", UNIT)
    rejects.add("field_count", "expected 18 fields, got 3", b"1,2,3\r", 1048600)
    rejects.add("non_numeric", "v_Vel is not a number: 'x\\xff'", b"7,x\xff,9", 1048700)
    assert rejects.close() == tmp_path / "q.ndjson"
    first, second = list(read_entries(tmp_path / "q.ndjson"))
    assert first == {
        "source_key": URI,
        "line": None,  # not known: a unit does not know how many lines come before it
        "reason": "field_count: expected 18 fields, got 3",  # <category>: <detail>, as CV's
        "raw": "1,2,3",
        "byte_offset": 1048600,
        "rule": "field_count",
        "unit": UNIT.id,
    }
    assert base64.b64decode(second["raw_base64"]) == b"7,x\xff,9"  # exactly, not lost
    assert (second["raw"], second["byte_offset"]) == ("7,x\ufffd,9", 1048700)
    # the same keys, in the same order, as a CV entry, then the fields that apply
    cv = json.loads(entry_line("wydot/BSM/2021/04/01/00/obj", 3, "malformed JSON: x", b"{"))
    assert list(first)[: len(cv)] == list(cv) == ["source_key", "line", "reason", "raw"]
    assert rejects.counts == {"field_count": 1, "non_numeric": 1}


def test_entries_of_earlier_ngsim_loads_read_as_the_one_shape(tmp_path: Path) -> None:
    """A catalog keeps the quarantine files its earlier loads wrote (their SHA-256 are in
    dataset_files): read, their entries are of the one shape, the text in raw and the input
    (from the unit id, '<uri>#<start>-<end>', a '#' in the URI included) in source_key."""
    http = "https://example.org/ngsim/a#b.csv"
    old = [  # exactly as Rejects.add wrote them
        {"rule": "field_count", "reason": "expected 18 fields, got 2", "line": "1,2",
         "unit": f"{URI}#0-1048576"},
        {"rule": "unknown_location", "reason": "unknown location 'mars'",
         "line": "1,2,mars,\u00e9", "unit": f"{http}#0-65536"},
    ]  # fmt: skip
    path = tmp_path / "part-00000-old.ndjson"
    path.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in old)
        + "\n"  # a blank line is no entry
        + entry_line(URI, None, "missing_field: no Vehicle_ID", b",,", byte_offset=9,
                     rule="missing_field",
                     unit=UNIT.id)
        + entry_line("wydot/BSM/2021/04/01/00/obj", 2, "malformed JSON: x", "{"),
        encoding="utf-8",
    )  # fmt: skip
    entries = list(read_entries(path))
    assert entries[:2] == [
        {"source_key": URI, "line": None, "reason": "field_count: expected 18 fields, got 2",
         "raw": "1,2", "rule": "field_count", "unit": f"{URI}#0-1048576"},
        {"source_key": http, "line": None, "reason": "unknown_location: unknown location 'mars'",
         "raw": "1,2,mars,\u00e9", "rule": "unknown_location", "unit": f"{http}#0-65536"},
    ]  # fmt: skip
    assert entries[2]["raw"] == ",," and entries[2]["byte_offset"] == 9  # the new shape as is
    assert [reason_category(e["reason"]) for e in entries] == [
        "field_count", "unknown_location", "missing_field", "malformed JSON"
    ]  # one way to read the category of any entry
    assert entries[3] == {
        "source_key": "wydot/BSM/2021/04/01/00/obj",
        "line": 2,
        "reason": "malformed JSON: x",
        "raw": "{",
    }
    assert len(entries) == 4
