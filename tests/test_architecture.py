"""The shape of the code: layers point one way, no import cycles, every module says its job.

Read from the source with `ast`, so the rules hold for imports inside functions too (an import
moved into a function to dodge a cycle is still an edge here); imports under
`if TYPE_CHECKING:` are annotations only and never run, so they are left out.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cvcatalog"

#: lower ranks may not import higher ones (docs/architecture.md, "Packages and modules")
LAYERS: list[tuple[str, ...]] = [
    (  # foundations
        "cvcatalog.exceptions",
        "cvcatalog.clock",
        "cvcatalog.sqlutil",
        "cvcatalog.configfile",
        "cvcatalog.config",
        "cvcatalog.sources",
        "cvcatalog.schemas",
        "cvcatalog.quality.config",
        "cvcatalog.quality.mapping",
        "cvcatalog.spatial",
    ),
    ("cvcatalog.io",),
    ("cvcatalog.datasets",),  # what a dataset is and how its rows parse; its tables are state's
    ("cvcatalog.state",),
    ("cvcatalog.quality.rules", "cvcatalog.quality.cleaning"),
    (  # the ingest
        "cvcatalog.pipeline",
        "cvcatalog.sources.cvpilot",
        "cvcatalog.sources.ngsim",
        "cvcatalog.transform",
        "cvcatalog.incremental",
        "cvcatalog.distributed",
    ),
    ("cvcatalog.ops", "cvcatalog.quality.report", "cvcatalog.quality.coverage"),
    ("cvcatalog.catalog", "cvcatalog.read", "cvcatalog.sandbox"),
    ("cvcatalog.cli", "cvcatalog.__main__"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = p
    return out


def _executed(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: `if TYPE_CHECKING:` bodies left out."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", getattr(test, "attr", ""))
            if name == "TYPE_CHECKING":
                todo.extend(node.orelse)
                continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        found: set[str] = set()
        for node in _executed(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] != "cvcatalog":
                    continue
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in mods else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "cvcatalog"}
        # a package's __init__ runs before its modules: an import of the parent package by
        # one of its modules is not an edge back
        edges[name] = {t for t in found if t in mods and t != name and not name.startswith(t + ".")}
    return edges


def _rank(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, rank): the longest prefix wins
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank)
    return None if best is None else best[1]


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


@functools.cache
def _edges() -> dict[str, set[str]]:
    """Parsed when a test asks (every xdist worker imports this module to collect it; one runs
    its tests)."""
    return _imports(MODULES)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if _rank(m) is None and not _is_package(m))
    assert unplaced == [], f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def _upward(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for src, targets in edges.items():
        rs = _rank(src)
        for t in targets:
            rt = _rank(t)
            if rs is not None and rt is not None and rt > rs:
                out.append(f"{src} -> {t}")
    return sorted(out)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_layers_point_one_way() -> None:
    assert _upward(_edges()) == []


def test_no_import_cycles() -> None:
    assert _cycles(_edges()) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_says_its_job(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    doc = ast.get_docstring(tree)
    assert doc and doc.strip(), f"{MODULES[module]} has no docstring saying what it is for"


def test_the_checks_can_fail() -> None:
    """The rules see a cycle, an upward import and a function-level import when there is one,
    and leave `if TYPE_CHECKING:` imports out."""
    a, b, c = "cvcatalog.state.db", "cvcatalog.io.lake", "cvcatalog.ops.cache"
    assert _cycles({a: {b}, b: {c}, c: {a}}) == [sorted([a, b, c])]
    assert _cycles({a: {b}, b: set()}) == []
    assert _upward({b: {a}, a: {b}}) == [f"{b} -> {a}"]
    assert _rank("cvcatalog.state.db") == 3
    assert _rank("cvcatalog.quality.rules") == 4
    assert _rank("cvcatalog.quality.config") == 0
    fake = ast.parse(
        "def f():\n    from cvcatalog.cli.main import main\n"
        "if TYPE_CHECKING:\n    from cvcatalog.ops import cache\n"
    )
    names = {
        n.module for n in _executed(fake) if isinstance(n, ast.ImportFrom) and n.module is not None
    }
    assert names == {"cvcatalog.cli.main"}


#: every state table and the one module that writes it (docs/architecture.md, `state/`)
TABLE_OWNERS = {
    **dict.fromkeys(
        ["partitions", "partition_files", "source_objects", "validation_reports", "ingest_runs"],
        "state/manifest.py",
    ),
    **dict.fromkeys(
        ["dataset_units", "dataset_files", "dataset_inputs", "dataset_duplicates"],
        "state/datasets.py",
    ),
    "catalog_settings": "state/settings.py",
    "experiment_pins": "state/pins.py",
    "file_deletes": "state/deletes.py",
    "file_checksums": "state/checksums.py",
    "lake_views": "state/tables.py",
    "schema_migrations": "state/db.py",
    "listing_cache": "ops/discover.py",
    "quality_stats": "quality/rules.py",
    "quality_configs": "quality/rules.py",
}
_WRITE = re.compile(
    r"""(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)|insert_rows\(\s*\w+,\s*["'](\w+)["']"""
)


def _state_writes() -> dict[str, set[str]]:
    """table -> the modules whose source writes it by name."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for m in _WRITE.finditer(path.read_text()):
            table = m.group(1) or m.group(2)
            if table in TABLE_OWNERS:
                out.setdefault(table, set()).add(path.relative_to(PACKAGE).as_posix())
    return out


def test_every_state_table_has_one_writer() -> None:
    writes = _state_writes()
    # the scan sees each owner's own writes (so it can fail), and no other module's
    assert set(writes) == set(TABLE_OWNERS), set(TABLE_OWNERS) ^ set(writes)
    wrong = {
        t: sorted(ms - {TABLE_OWNERS[t]}) for t, ms in writes.items() if ms != {TABLE_OWNERS[t]}
    }
    assert not wrong, f"state tables written outside their owner module: {wrong}"


#: a DuckDB scan of files in SQL the code builds: the argument is an interpolation, a
#: parameter or a literal (a docstring's `read_json(ignore_errors)` is not one)
_SCAN = re.compile(r"\b(read_parquet|read_json|read_ndjson_objects|read_csv)\((?=[{?'])")


def _scans_without_hive_option(text: str) -> list[str]:
    """The file scans of this source that do not say `hive_partitioning`: DuckDB then guesses
    hive columns from every `key=value` folder of the path, the catalog's own included."""
    out = []
    for m in _SCAN.finditer(text):
        depth, end = 1, m.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        if "hive_partitioning" not in text[m.start() : end]:
            out.append(f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(1)}")
    return out


def test_every_file_scan_says_whether_folders_are_columns() -> None:
    """A catalog under `/data/run=3/` gave every staged file a `run` column and DuckLake
    refused them all; the lake's folders are read as partitions by DuckLake, never by a scan."""
    missing = {
        path.relative_to(PACKAGE).as_posix(): found
        for path in PACKAGE.rglob("*.py")
        if (found := _scans_without_hive_option(path.read_text()))
    }
    assert not missing, missing
    # the check can fail, across the fragments of an f-string too
    assert _scans_without_hive_option('f"read_parquet({files}, filename = true) t"') != []
    assert not _scans_without_hive_option(
        'f"read_json({p}, columns = {c}, "\n f"hive_partitioning = false, {limit})"'
    )
