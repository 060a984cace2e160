"""What each (source, message type) looks like: raw read types, canonical columns, SQL views.

One definition drives everything that must agree: the types read_json parses raw records with,
the canonical SELECT that writes Parquet, the column list of empty views and Dask meta, and the
view bodies. The SQL itself lives in cvcatalog/sql/transforms/ and cvcatalog/sql/views/
This module only fills in placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cvcatalog.sqlutil import list_literal, load_sql, quote_ident, quote_literal

__all__ = ["MessageSchema", "render_sql", "struct_type", "view_sql"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VIEW_HEADER = re.compile(r"^\s*CREATE OR REPLACE VIEW \{view\} AS\s*$", re.MULTILINE)


def render_sql(template: str, **values: str) -> str:
    """Fill `{name}` placeholders; whole-line `--` comments are left alone.

    str.format would trip over DuckDB's struct literals ({'a': 1}); here only bare
    identifiers in braces are placeholders, and an unknown one is an error, not silent SQL.
    """

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise KeyError(f"SQL template placeholder {{{name}}} has no value")
        return values[name]

    out = []
    for line in template.splitlines(keepends=True):
        out.append(line if line.lstrip().startswith("--") else _PLACEHOLDER.sub(fill, line))
    return "".join(out)


def _select_body(view_template: str) -> str:
    """The SELECT of a `CREATE OR REPLACE VIEW {view} AS ...` template, for use as a query."""
    m = _VIEW_HEADER.search(view_template)
    if m is None:
        raise ValueError("view template lacks a 'CREATE OR REPLACE VIEW {view} AS' line")
    return view_template[m.end() :].strip()


def struct_type(fields: Mapping[str, str]) -> str:
    """A DuckDB STRUCT type from (field name -> type), names quoted."""
    return "STRUCT(" + ", ".join(f"{quote_ident(k)} {v}" for k, v in fields.items()) + ")"


@dataclass(frozen=True, eq=False)
class MessageSchema:
    """Everything the pipeline needs to know about one (source, message type).

    Bump canonical_version whenever canonical_columns (or their meaning) change, so cached
    partitions written under the old layout are recognised. A bump that only adds columns sets
    compatible_since to the oldest version whose files still read correctly (the new columns
    read as NULL: the lake table gets ALTER TABLE ... ADD COLUMN, nothing is downloaded again);
    a bump that renames columns lists them in renamed as well (ALTER TABLE ... RENAME COLUMN);
    any other change leaves it None, and older partitions are re-converted.
    """

    source: str
    message_type: str
    canonical_version: int
    #: DuckDB types for read_json(columns=...): the union of all known schema versions.
    read_columns: dict[str, str]
    #: Top-level keys a record must have; all of them NULL marks an unparseable line.
    required_top_level: tuple[str, ...]
    #: (name, DuckDB type) of the Parquet files, in order (no hive partition columns).
    canonical_columns: list[tuple[str, str]]
    #: (name, DuckDB type) of the socrata view, in order, including source and date.
    socrata_columns: list[tuple[str, str]]
    #: metadata.schemaVersion values this schema was written against (docs/schema.md lists them);
    #: rows of any other version are parsed for the fields that are known, never quarantined
    #: for their version
    known_versions: frozenset[int]
    #: file names under cvcatalog/sql/transforms/ and cvcatalog/sql/views/
    transform_sql: str
    view_template: str
    socrata_view_template: str
    view_name: str
    socrata_view_name: str
    #: the record time column (UTC) used for time windows; None when records carry no absolute
    #: time (NYCDOT events are only binned), so date ranges select whole partitions
    time_column: str | None = "generated_at"
    #: hive partition columns the canonical view adds after the Parquet columns
    partition_columns: list[tuple[str, str]] = field(
        default_factory=lambda: [
            ("source", "VARCHAR"),
            ("message_type", "VARCHAR"),
            ("date", "DATE"),
            ("year", "INTEGER"),
            ("month", "INTEGER"),
            ("day", "INTEGER"),
        ]
    )
    #: further views over the canonical view, as (view name, template under cvcatalog/sql/views/); their
    #: templates fill {view} and {relation} like the socrata one (e.g. one row per nested BSM)
    extra_views: tuple[tuple[str, str], ...] = ()
    #: the oldest canonical version whose files this one reads as they are (see above)
    compatible_since: int | None = None
    #: (old name, new name) of columns renamed since compatible_since: the lake table renames
    #: them (old files read under the new name), and so does every reader of old files
    renamed: tuple[tuple[str, str], ...] = ()
    #: further `{name}` values of the transform template (e.g. a DuckDB type it casts to)
    sql_values: Mapping[str, str] = field(default_factory=dict)

    def reads(self, version: int | None) -> bool:
        """Whether files written under canonical `version` are read as they are (no rewrite)."""
        if version is None:
            return False
        oldest = self.canonical_version if self.compatible_since is None else self.compatible_since
        return oldest <= version <= self.canonical_version

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.canonical_columns]

    @property
    def view_columns(self) -> list[tuple[str, str]]:
        """(name, type) of the canonical view: Parquet columns, then partition columns."""
        return self.canonical_columns + self.partition_columns

    def read_columns_sql(self) -> str:
        """The read_json `columns=` argument as a DuckDB struct literal."""
        return (
            "{"
            + ", ".join(
                f"{quote_literal(k)}: {quote_literal(v)}" for k, v in self.read_columns.items()
            )
            + "}"
        )

    def canonical_select_sql(
        self, relation: str, *, validate: bool = True, extra_columns: Sequence[str] = ()
    ) -> str:
        """The SELECT turning raw rows into canonical rows, with invalid_reason and warnings.

        relation is a FROM item (table name or parenthesised query) with the read_columns and
        source_key. extra_columns are "<expr> AS <name>" items appended after the canonical
        columns; they may refer to metadata and payload via the alias b. A template may use
        `{known_versions}` (known_versions as a list literal) to flag rows of other versions.
        """
        extra = "".join(f", {c}" for c in extra_columns)
        return render_sql(
            load_sql("transforms", self.transform_sql),
            **self.sql_values,
            relation=relation,
            validate="TRUE" if validate else "FALSE",
            extra_columns=extra,
            known_versions=self.known_versions_sql(),
        )

    def known_versions_sql(self) -> str:
        """The known schema versions as a DuckDB INTEGER list literal (for `{known_versions}`)."""
        return "[" + ", ".join(str(int(v)) for v in sorted(self.known_versions)) + "]::INTEGER[]"

    def socrata_select_sql(self, relation: str) -> str:
        """The socrata SELECT over a relation with the canonical columns plus source and date."""
        body = _select_body(load_sql("views", self.socrata_view_template))
        return render_sql(body, relation=relation)

    def empty_select_sql(self, columns: Sequence[tuple[str, str]] | None = None) -> str:
        """A zero-row SELECT with the canonical (Parquet) columns and their exact types."""
        cols = self.canonical_columns if columns is None else columns
        items = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in cols)
        return f"SELECT {items} WHERE false"


def view_sql(
    schema: MessageSchema, files: list[str], extra_columns: Sequence[str] = ()
) -> list[str]:
    """CREATE OR REPLACE VIEW statements for the canonical, the socrata and any extra views.

    files are absolute Parquet paths of complete partitions. With none, the canonical view is
    a typed zero-row SELECT, so queries and Dask meta still see every column. extra_columns
    (the quality step's `segment`) are in some files only: the view then unions the files'
    columns by name, NULL where a file lacks one.
    """
    view = quote_ident(schema.view_name)
    if files:
        columns = ",\n    ".join(quote_ident(n) for n in [*schema.column_names, *extra_columns])
        file_list = list_literal(files)
        if extra_columns:
            file_list += ",\n    union_by_name = true"
        canonical = render_sql(
            load_sql("views", schema.view_template),
            view=view,
            columns=columns,
            files=file_list,
        )
    else:
        canonical = (
            f"CREATE OR REPLACE VIEW {view} AS {schema.empty_select_sql(schema.view_columns)}"
        )
    socrata = render_sql(
        load_sql("views", schema.socrata_view_template),
        view=quote_ident(schema.socrata_view_name),
        relation=view,
    )
    extra = [
        render_sql(load_sql("views", template), view=quote_ident(name), relation=view)
        for name, template in schema.extra_views
    ]
    return [canonical, socrata, *extra]


#: The canonical BSM columns every BSM source shares by name, type and order, so the `bsm`
#: union view and `... from wydot_bsm union all ... from thea_bsm` line up. SI units: degrees,
#: metres, m/s, m/s^2, deg/s; vertical acceleration in g, vehicle size in cm as in J2735.
BSM_SHARED_COLUMNS: list[tuple[str, str]] = [
    ("generated_at", "TIMESTAMPTZ"),
    ("received_at", "TIMESTAMPTZ"),
    ("vehicle_id", "VARCHAR"),
    ("latitude", "DOUBLE"),
    ("longitude", "DOUBLE"),
    ("elevation_m", "DOUBLE"),
    ("speed_mps", "DOUBLE"),
    ("heading_deg", "DOUBLE"),
    ("schema_version", "INTEGER"),
    ("msg_cnt", "INTEGER"),
    ("sec_mark", "INTEGER"),
    ("accel_lat_mps2", "DOUBLE"),
    ("accel_long_mps2", "DOUBLE"),
    ("accel_vert_g", "DOUBLE"),
    ("accel_yaw_dps", "DOUBLE"),
    ("accuracy_semi_major_m", "DOUBLE"),
    ("accuracy_semi_minor_m", "DOUBLE"),
    ("accuracy_orientation_deg", "DOUBLE"),
    ("steering_angle_deg", "DOUBLE"),
    ("transmission", "VARCHAR"),
    ("brakes_left_front", "BOOLEAN"),
    ("brakes_right_front", "BOOLEAN"),
    ("brakes_left_rear", "BOOLEAN"),
    ("brakes_right_rear", "BOOLEAN"),
    ("brakes_wheel_unavailable", "BOOLEAN"),
    ("brakes_traction", "VARCHAR"),
    ("brakes_abs", "VARCHAR"),
    ("brakes_scs", "VARCHAR"),
    ("brakes_boost", "VARCHAR"),
    ("brakes_aux", "VARCHAR"),
    ("size_width_cm", "INTEGER"),
    ("size_length_cm", "INTEGER"),
]
