"""The socrata view, column by column: which canonical columns each socrata column comes from.

A frame asked for a few data.transportation.gov columns should read and compute only those.
The mapping is not written a second time: it is taken from the view template itself
(`cvcatalog/sql/views/<source>_<type>_socrata.sql`), split once into its select items (one
per socrata column) and its FROM clause (the subqueries that filter invalid rows and unpack
partII). DuckDB's own parser (`json_serialize_sql`) says which columns every item reads; those
names are followed down through the subqueries (an item of a subquery, or `alias.*`) to the
canonical columns of the relation. A frame then runs the same FROM clause with only the asked
items; canonical columns no asked item needs stand in as typed NULLs, so nothing else is read.

The columns the quality step adds to a table's files (`segment`, `imputed`: QUALITY_COLUMNS)
are no portal columns, but they are the catalog's: a frame that has them keeps them, under
their own names, after the socrata columns (`carried`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import duckdb

from cvcatalog.exceptions import ConfigError
from cvcatalog.quality.config import QUALITY_COLUMNS
from cvcatalog.schemas.base import _select_body, render_sql
from cvcatalog.sqlutil import load_sql, quote_ident

if TYPE_CHECKING:
    from cvcatalog.schemas.base import MessageSchema

__all__ = ["SocrataColumn", "SocrataPlan", "socrata_plan"]

_OPEN = "([{"
_CLOSE = ")]}"


@dataclass(frozen=True)
class SocrataColumn:
    """One socrata column: its select item (SQL over the view's FROM clause) and the
    canonical (or partition) columns it is computed from."""

    name: str
    expression: str  # the item as written in the view, `<expr> AS "<name>"`
    needs: frozenset[str]
    #: the relation column it is, unchanged (a rename), or None: an expression
    source: str | None = None


@dataclass(frozen=True)
class SocrataPlan:
    """The socrata view of one (source, type) split into per-column items."""

    view: str
    columns: tuple[SocrataColumn, ...]
    #: the view's FROM clause (and WHERE), with the {relation} placeholder
    from_clause: str
    #: columns the FROM clause needs for every row (e.g. invalid_reason for its filter)
    always: frozenset[str]
    #: (name, DuckDB type) of every column the relation may have (canonical + partition)
    relation_columns: tuple[tuple[str, str], ...]
    #: when the FROM clause only keeps the rows where these relation columns are NULL (and
    #: neither adds, groups nor reorders rows): renames need no SQL. None: run the SQL.
    null_filter: tuple[str, ...] | None = None
    #: the quality step's columns, passed through unchanged: in the whole frame when the
    #: relation has them, and whenever asked for (typed NULL where the relation lacks them)
    carried: tuple[SocrataColumn, ...] = ()

    @property
    def names(self) -> list[str]:
        """The socrata view's columns (carried ones not included)."""
        return [c.name for c in self.columns]

    def check(self, names: Sequence[str]) -> None:
        """ConfigError naming the unknown columns and the valid ones."""
        known = {*self.names, *(c.name for c in self.carried)}
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError(
                f"unknown column(s) {', '.join(missing)} for {self.view}; "
                f"valid: {', '.join(self.names)}"
            )

    def needs(self, names: Sequence[str] | None) -> list[str]:
        """The relation columns (in relation order) that computing these socrata columns
        reads; None: all of them."""
        chosen = self.columns if names is None else self._pick(names)
        want = set(self.always).union(*(c.needs for c in chosen))
        kept = [c.name for c in chosen if c in self.carried]
        return [n for n, _ in self.relation_columns if n in want] + kept

    def renames(self, names: Sequence[str] | None) -> list[tuple[str, str]] | None:
        """(socrata name, relation column) when every asked column is a relation column
        renamed and the rows kept are those where null_filter's columns are NULL: a reader
        then renames and filters Arrow columns, no SQL. None: select_sql() is needed."""
        if names is None or self.null_filter is None:
            return None
        chosen = self._pick(names)
        if any(c.source is None for c in chosen):
            return None
        return [(c.name, c.source) for c in chosen if c.source is not None]

    def select_sql(self, names: Sequence[str] | None, relation: str, have: Sequence[str]) -> str:
        """The SELECT computing these socrata columns (None: all) over `relation`, which holds
        the columns `have`; every other relation column is a typed NULL, never read. All
        socrata columns (names None) come with the carried columns the relation has."""
        chosen = (
            [*self.columns, *(c for c in self.carried if c.name in set(have))]
            if names is None
            else self._pick(names)
        )
        types = dict(QUALITY_COLUMNS)
        missing = [(c.name, types[c.name]) for c in chosen if c in self.carried]
        pad = [
            f"CAST(NULL AS {t}) AS {quote_ident(n)}"
            for n, t in [*self.relation_columns, *missing]
            if n not in set(have)
        ]
        source = f"(SELECT {', '.join(['_r.*', *pad])} FROM {relation} AS _r)" if pad else relation
        items = ",\n    ".join(c.expression for c in chosen)
        return f"SELECT\n    {items}\n{render_sql(self.from_clause, relation=source)}"

    def _pick(self, names: Sequence[str]) -> list[SocrataColumn]:
        self.check(names)
        by_name = {c.name: c for c in (*self.columns, *self.carried)}
        return [by_name[n] for n in dict.fromkeys(names)]


@cache
def _plan(template: str, view: str, relation_columns: tuple[tuple[str, str], ...]) -> SocrataPlan:
    body = _select_body(load_sql("views", template))
    items, from_clause = _split_select(body)
    tree = _parse(render_sql(body, relation="frame"))
    select_list = tree["select_list"]
    if len(select_list) != len(items):
        raise ValueError(
            f"{template}: {len(items)} select items, the parser saw {len(select_list)}"
        )
    known = {n for n, _ in relation_columns}
    columns = []
    for text, node in zip(items, select_list, strict=True):
        name = node.get("alias") or node["column_names"][-1]
        needs = _resolve(tree["from_table"], _refs(node), known)
        source = None
        if node.get("class") == "COLUMN_REF":
            ref = node["column_names"][-1]
            if ref in known and _passes(tree["from_table"], ref):
                source = ref
        columns.append(SocrataColumn(name, text, frozenset(needs & known), source))
    always = _resolve(tree["from_table"], _refs(tree.get("where_clause")), known) & known
    alias = tree["from_table"].get("alias")
    qualifier = f"{quote_ident(alias)}." if alias else ""
    carried = tuple(
        SocrataColumn(n, f"{qualifier}{quote_ident(n)} AS {quote_ident(n)}", frozenset({n}), n)
        for n, _ in QUALITY_COLUMNS
        if n not in {c.name for c in columns} and _passes(tree["from_table"], n)
    )
    return SocrataPlan(
        view,
        tuple(columns),
        from_clause,
        frozenset(always),
        relation_columns,
        _null_filter(tree, known),
        carried,
    )


def socrata_plan(schema: MessageSchema) -> SocrataPlan:
    """The per-column plan of a schema's socrata view (parsed once per process)."""
    relation = tuple(dict([*schema.partition_columns, *schema.canonical_columns]).items())
    return _plan(schema.socrata_view_template, schema.socrata_view_name, relation)


# -- parsing ----------------------------------------------------------------------------------


def _parse(sql: str) -> dict[str, Any]:
    con = duckdb.connect()
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    finally:
        con.close()
    assert row is not None
    out = json.loads(row[0])
    if out.get("error"):
        raise ValueError(f"socrata view does not parse: {out.get('error_message')}")
    node: dict[str, Any] = out["statements"][0]["node"]
    return node


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _refs(node: Any) -> set[str]:
    """The column names an expression (or clause) reads, without their table alias."""
    return {n["column_names"][-1] for n in _walk(node) if n.get("class") == "COLUMN_REF"}


def _resolve(from_table: dict[str, Any], names: set[str], known: set[str]) -> set[str]:
    """Follow names read from a FROM item down to the relation's columns."""
    kind = from_table.get("type")
    if kind == "BASE_TABLE":
        return names
    if kind != "SUBQUERY":
        return set(known)  # a join or table function: assume it reads everything
    node = from_table["subquery"]["node"]
    if node.get("type") != "SELECT_NODE":
        return set(known)
    defined: dict[str, dict[str, Any]] = {}
    star = False
    for item in node["select_list"]:
        if item.get("class") == "STAR":
            star = True
        elif item.get("alias"):
            defined[item["alias"]] = item
        elif item.get("class") == "COLUMN_REF":
            defined[item["column_names"][-1]] = item
    down = _refs(node.get("where_clause"))
    for name in names:
        if name in defined:
            down |= _refs(defined[name])
        elif star:
            down.add(name)
    return _resolve(node["from_table"], down, known)


def _passes(from_table: dict[str, Any], name: str) -> bool:
    """Whether a name read from a FROM item is the relation's column of that name, unchanged
    (passed through `alias.*` or as itself by every subquery)."""
    kind = from_table.get("type")
    if kind == "BASE_TABLE":
        return True
    if kind != "SUBQUERY" or from_table["subquery"]["node"].get("type") != "SELECT_NODE":
        return False
    node = from_table["subquery"]["node"]
    star = False
    for item in node["select_list"]:
        if item.get("class") == "STAR":
            if item.get("exclude_list") or item.get("replace_list") or item.get("rename_list"):
                return False
            star = True
        elif item.get("alias") == name or (
            not item.get("alias")
            and item.get("class") == "COLUMN_REF"
            and item["column_names"][-1] == name
        ):
            plain = item.get("class") == "COLUMN_REF" and item["column_names"][-1] == name
            return plain and _passes(node["from_table"], name)
    return star and _passes(node["from_table"], name)


def _null_filter(tree: dict[str, Any], known: set[str]) -> tuple[str, ...] | None:
    """The relation columns the view's WHERE clauses require NULL, when that is all its FROM
    chain does to rows (no join, grouping, DISTINCT, ORDER/LIMIT, UNNEST, other condition)."""
    names: list[str] = []
    node: dict[str, Any] | None = tree
    while node is not None:
        if node.get("type") != "SELECT_NODE" or node.get("modifiers") or (
            node.get("group_expressions") or node.get("having") or node.get("qualify")
        ):
            return None
        if any(
            n.get("class") == "FUNCTION" and n.get("function_name", "").lower() == "unnest"
            for n in _walk(node["select_list"])
        ):
            return None
        where = node.get("where_clause")
        if where is not None:
            kids = where.get("children") or []
            if where.get("type") != "OPERATOR_IS_NULL" or len(kids) != 1:
                return None
            if kids[0].get("class") != "COLUMN_REF":
                return None
            col = kids[0]["column_names"][-1]
            if col not in known or not _passes(node["from_table"], col):
                return None
            names.append(col)
        inner = node["from_table"]
        if inner.get("type") == "BASE_TABLE":
            return tuple(dict.fromkeys(names))
        if inner.get("type") != "SUBQUERY":
            return None
        node = inner["subquery"]["node"]
    return None


def _split_select(body: str) -> tuple[list[str], str]:
    """`SELECT a, b AS x FROM ...` -> (['a', 'b AS x'], 'FROM ...'), splitting on the commas
    and the FROM of the outermost level (strings, quoted names and comments skipped)."""
    depth, i, n = 0, 0, len(body)
    cuts: list[int] = []
    start = end = -1
    while i < n:
        ch = body[i]
        if ch in "'\"":
            close = body.find(ch, i + 1)
            while close != -1 and body[close + 1 : close + 2] == ch:  # doubled quote
                close = body.find(ch, close + 2)
            i = (close if close != -1 else n) + 1
            continue
        if body.startswith("--", i):
            nl = body.find("\n", i)
            i = nl if nl != -1 else n
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and ch == ",":
            cuts.append(i)
        elif depth == 0 and _word_at(body, i, "SELECT") and start < 0:
            start = i + len("SELECT")
        elif depth == 0 and _word_at(body, i, "FROM") and start >= 0:
            end = i
            break
        i += 1
    if start < 0 or end < 0:
        raise ValueError("socrata view template is not `SELECT ... FROM ...`")
    bounds = [start, *[c + 1 for c in cuts if start < c < end]]
    stops = [*[c for c in cuts if start < c < end], end]
    items = [body[a:b].strip() for a, b in zip(bounds, stops, strict=True)]
    items = [_strip_comments(x) for x in items]
    return items, body[end:]


def _word_at(text: str, i: int, word: str) -> bool:
    if text[i : i + len(word)].upper() != word:
        return False
    before = text[i - 1] if i > 0 else " "
    after = text[i + len(word)] if i + len(word) < len(text) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def _strip_comments(item: str) -> str:
    """Drop whole-line `--` comments inside an item (they would swallow a joining comma)."""
    return "\n".join(x for x in item.splitlines() if not x.lstrip().startswith("--")).strip()
