"""The wheel holds the whole package: every module and every data file under cvcatalog/ (a
SQL folder left out of pyproject's package data broke every ingest of an installed wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cvcatalog

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in (root / "cvcatalog").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "cvcatalog", src / "cvcatalog", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = out.glob("cvcatalog-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packed = {n for n in z.namelist() if n.startswith("cvcatalog/")}
    want = _tree(src)
    assert "cvcatalog/sql/spatial/macros.sql" in want
    assert want - packed == set(), f"left out of the wheel: {sorted(want - packed)}"
    # one version: the package's, which `cvcatalog --version` prints, is the wheel's
    assert wheel.name.startswith(f"cvcatalog-{cvcatalog.__version__}-")
