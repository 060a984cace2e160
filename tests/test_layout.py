"""Placing files in the catalog's folders while another process prunes the ones it emptied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvcatalog.io.layout import into_folder, prune_empty_dirs, publish_file


def test_a_file_is_placed_though_another_process_pruned_its_folder(tmp_path: Path) -> None:
    src = tmp_path / "staged.parquet"
    src.write_bytes(b"rows")
    dest = tmp_path / "lake" / "day=1" / "data.parquet"
    calls = 0

    def place() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # an eviction emptied a neighbour and pruned up: the new folder went
            prune_empty_dirs(dest.parent, tmp_path)
            assert not dest.parent.exists()
        os.replace(src, dest)

    into_folder(dest, place)
    assert dest.read_bytes() == b"rows" and calls == 2


def test_a_missing_source_is_not_mistaken_for_a_pruned_folder(tmp_path: Path) -> None:
    dest = tmp_path / "lake" / "data.parquet"
    calls = 0

    def place() -> None:
        nonlocal calls
        calls += 1
        os.replace(tmp_path / "gone", dest)

    with pytest.raises(FileNotFoundError):
        into_folder(dest, place)
    assert calls == 1


def test_publish_file_makes_the_folder_and_moves_the_file(tmp_path: Path) -> None:
    src = tmp_path / "staged"
    src.write_bytes(b"x")
    dest = tmp_path / "a" / "b" / "f"
    publish_file(src, dest)
    assert dest.read_bytes() == b"x" and not src.exists()
