"""What each (source, message type) looks like: raw read types, canonical columns, SQL views.

One definition drives everything that must agree: the types read_json parses raw records with,
the canonical SELECT that writes Parquet, the column list of empty views and Dask meta, and the
view bodies. The SQL itself lives in sql/transforms/ and sql/views/ (packaged as
cvcatalog._sql); this module only fills in placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cvcatalog.sqlutil import list_literal, load_sql, quote_ident, quote_literal

__all__ = [
    "SCHEMAS",
    "MessageSchema",
    "list_literal",
    "quote_ident",
    "quote_literal",
    "render_sql",
    "view_sql",
]

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


def _struct(fields: Mapping[str, str]) -> str:
    return "STRUCT(" + ", ".join(f"{quote_ident(k)} {v}" for k, v in fields.items()) + ")"


@dataclass(frozen=True, eq=False)
class MessageSchema:
    """Everything the pipeline needs to know about one (source, message type).

    Bump canonical_version whenever canonical_columns (or their meaning) change, so cached
    partitions written under the old layout are recognised and re-converted.
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
    known_versions: frozenset[int]
    #: file names under sql/transforms/ and sql/views/
    transform_sql: str
    view_template: str
    socrata_view_template: str
    view_name: str
    socrata_view_name: str
    #: the record time column (UTC) used for time windows
    time_column: str = "generated_at"
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
        columns; they may refer to metadata and payload via the alias b.
        """
        extra = "".join(f", {c}" for c in extra_columns)
        return render_sql(
            load_sql("transforms", self.transform_sql),
            relation=relation,
            validate="TRUE" if validate else "FALSE",
            extra_columns=extra,
        )

    def socrata_select_sql(self, relation: str) -> str:
        """The socrata SELECT over a relation with the canonical columns plus source and date."""
        body = _select_body(load_sql("views", self.socrata_view_template))
        return render_sql(body, relation=relation)

    def empty_select_sql(self, columns: Sequence[tuple[str, str]] | None = None) -> str:
        """A zero-row SELECT with the canonical (Parquet) columns and their exact types."""
        cols = self.canonical_columns if columns is None else columns
        items = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in cols)
        return f"SELECT {items} WHERE false"


def view_sql(schema: MessageSchema, files: list[str]) -> list[str]:
    """CREATE OR REPLACE VIEW statements for the canonical and the socrata view.

    files are absolute Parquet paths of complete partitions. With none, the canonical view is
    a typed zero-row SELECT, so queries and Dask meta still see every column.
    """
    view = quote_ident(schema.view_name)
    if files:
        columns = ",\n    ".join(quote_ident(n) for n in schema.column_names)
        canonical = render_sql(
            load_sql("views", schema.view_template),
            view=view,
            columns=columns,
            files=list_literal(files),
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
    return [canonical, socrata]


# --------------------------------------------------------------------------------------------
# WYDOT BSM

_WYDOT_BSM_METADATA = {
    # schemaVersion 3+ (ODE); v1 used generatedAt/receivedAt instead of the record*/ode* names
    "recordGeneratedAt": "VARCHAR",
    "recordGeneratedBy": "VARCHAR",
    "odeReceivedAt": "VARCHAR",
    "generatedAt": "VARCHAR",
    "generatedBy": "VARCHAR",
    "receivedAt": "VARCHAR",
    "schemaVersion": "INTEGER",
    "logFileName": "VARCHAR",
    "recordType": "VARCHAR",
    "payloadType": "VARCHAR",
    "sanitized": "BOOLEAN",
    "validSignature": "BOOLEAN",
    "securityResultCode": "VARCHAR",
    "bsmSource": "VARCHAR",
    "serialId": _struct(
        {
            "streamId": "VARCHAR",
            "bundleSize": "BIGINT",
            "bundleId": "BIGINT",
            "recordId": "BIGINT",
            "serialNumber": "BIGINT",
        }
    ),
    "receivedMessageDetails": _struct(
        {
            # strings in the samples ("0"); VARCHAR also takes numbers verbatim
            "locationData": _struct(
                {
                    "latitude": "VARCHAR",
                    "longitude": "VARCHAR",
                    "elevation": "VARCHAR",
                    "speed": "VARCHAR",
                    "heading": "VARCHAR",
                }
            ),
            "rxSource": "VARCHAR",
        }
    ),
}

_WYDOT_BSM_CORE = {
    "msgCnt": "INTEGER",
    "id": "VARCHAR",
    "secMark": "INTEGER",
    "position": _struct({"latitude": "DOUBLE", "longitude": "DOUBLE", "elevation": "DOUBLE"}),
    "accelSet": _struct(
        {"accelLat": "DOUBLE", "accelLong": "DOUBLE", "accelVert": "DOUBLE", "accelYaw": "DOUBLE"}
    ),
    "accuracy": _struct({"semiMajor": "DOUBLE", "semiMinor": "DOUBLE", "orientation": "DOUBLE"}),
    "transmission": "VARCHAR",
    "speed": "DOUBLE",
    "heading": "DOUBLE",
    "angle": "DOUBLE",
    "brakes": _struct(
        {
            "wheelBrakes": _struct(
                {
                    "leftFront": "BOOLEAN",
                    "rightFront": "BOOLEAN",
                    "unavailable": "BOOLEAN",
                    "leftRear": "BOOLEAN",
                    "rightRear": "BOOLEAN",
                }
            ),
            "traction": "VARCHAR",
            "abs": "VARCHAR",
            "scs": "VARCHAR",
            "brakeBoost": "VARCHAR",
            "auxBrakes": "VARCHAR",
        }
    ),
    "size": _struct({"width": "INTEGER", "length": "INTEGER"}),
}

WYDOT_BSM_READ_COLUMNS: dict[str, str] = {
    "metadata": _struct(_WYDOT_BSM_METADATA),
    "payload": _struct(
        {
            "dataType": "VARCHAR",
            # partII stays JSON: its content varies by extension and it is an array in the
            # samples but may be a single object; nothing is lost either way.
            "data": _struct({"coreData": _struct(_WYDOT_BSM_CORE), "partII": "JSON"}),
        }
    ),
}

#: Canonical BSM columns. Units are SI as published by the ODE (degrees, metres, m/s);
#: vehicle size stays in the J2735 centimetres, vertical acceleration in g.
WYDOT_BSM_COLUMNS: list[tuple[str, str]] = [
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
    ("record_generated_by", "VARCHAR"),
    ("record_type", "VARCHAR"),
    ("log_file_name", "VARCHAR"),
    ("payload_type", "VARCHAR"),
    ("sanitized", "BOOLEAN"),
    ("security_result_code", "VARCHAR"),
    ("bsm_source", "VARCHAR"),
    ("valid_signature", "BOOLEAN"),
    ("serial_stream_id", "VARCHAR"),
    ("serial_bundle_size", "BIGINT"),
    ("serial_bundle_id", "BIGINT"),
    ("serial_record_id", "BIGINT"),
    ("serial_number", "BIGINT"),
    ("rmd_latitude", "DOUBLE"),
    ("rmd_longitude", "DOUBLE"),
    ("rmd_elevation_m", "DOUBLE"),
    ("rmd_speed_mps", "DOUBLE"),
    ("rmd_heading_deg", "DOUBLE"),
    ("rx_source", "VARCHAR"),
    ("data_type", "VARCHAR"),
    ("part_ii", "JSON"),
    ("source_key", "VARCHAR"),
    ("invalid_reason", "VARCHAR"),
    ("warnings", "VARCHAR[]"),
]

#: The 69 WydotBSMFlattener names (data.transportation.gov), then source and date.
WYDOT_BSM_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    ("dataType", "VARCHAR"),
    ("metadata_generatedAt", "TIMESTAMPTZ"),
    ("metadata_generatedBy", "VARCHAR"),
    ("metadata_logFileName", "VARCHAR"),
    ("metadata_schemaVersion", "INTEGER"),
    ("metadata_securityResultCode", "VARCHAR"),
    ("metadata_sanitized", "BOOLEAN"),
    ("metadata_payloadType", "VARCHAR"),
    ("metadata_recordType", "VARCHAR"),
    ("metadata_serialId_streamId", "VARCHAR"),
    ("metadata_serialId_bundleSize", "BIGINT"),
    ("metadata_serialId_bundleId", "BIGINT"),
    ("metadata_serialId_recordId", "BIGINT"),
    ("metadata_serialId_serialNumber", "BIGINT"),
    ("metadata_receivedAt", "TIMESTAMPTZ"),
    ("metadata_rmd_elevation", "DOUBLE"),
    ("metadata_rmd_heading", "DOUBLE"),
    ("metadata_rmd_latitude", "DOUBLE"),
    ("metadata_rmd_longitude", "DOUBLE"),
    ("metadata_rmd_speed", "DOUBLE"),
    ("metadata_rmd_rxSource", "VARCHAR"),
    ("metadata_bsmSource", "VARCHAR"),
    ("coreData_msgCnt", "INTEGER"),
    ("coreData_id", "VARCHAR"),
    ("coreData_secMark", "INTEGER"),
    ("coreData_position_lat", "DOUBLE"),
    ("coreData_position_long", "DOUBLE"),
    ("coreData_elevation", "DOUBLE"),
    ("coreData_accelset_accelYaw", "DOUBLE"),
    ("coreData_accuracy_semiMajor", "DOUBLE"),
    ("coreData_accuracy_semiMinor", "DOUBLE"),
    ("coreData_transmission", "VARCHAR"),
    ("coreData_speed", "DOUBLE"),
    ("coreData_heading", "DOUBLE"),
    ("coreData_brakes_wheelBrakes_leftFront", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_rightFront", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_unavailable", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_leftRear", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_rightRear", "BOOLEAN"),
    ("coreData_brakes_traction", "VARCHAR"),
    ("coreData_brakes_abs", "VARCHAR"),
    ("coreData_brakes_scs", "VARCHAR"),
    ("coreData_brakes_brakeBoost", "VARCHAR"),
    ("coreData_brakes_auxBrakes", "VARCHAR"),
    ("coreData_size", "JSON"),
    ("part2_suve_cd_hpmstype", "VARCHAR"),
    ("part2_suve_cd_role", "VARCHAR"),
    ("part2_suve_vd_height", "DOUBLE"),
    ("part2_suve_vd_mass", "DOUBLE"),
    ("part2_suve_vd_trailerweight", "DOUBLE"),
    ("part2_vse_events", "JSON"),
    ("part2_vse_ph_crumbdata", "JSON"),
    ("part2_vse_pp_confidence", "DOUBLE"),
    ("part2_vse_pp_radiusofcurve", "DOUBLE"),
    ("part2_vse_lights", "JSON"),
    ("part2_spve_vehalert_sspRights", "BIGINT"),
    ("part2_spve_vehalert_event_sspRights", "BIGINT"),
    ("part2_spve_vehalert_event_events", "JSON"),
    ("part2_spve_vehalert_lightsUse", "VARCHAR"),
    ("part2_spve_vehalert_multi", "VARCHAR"),
    ("part2_spve_vehalert_responseType", "VARCHAR"),
    ("part2_spve_vehalert_sirenUse", "VARCHAR"),
    ("part2_spve_event_desc", "JSON"),
    ("part2_spve_event_extent", "VARCHAR"),
    ("part2_spve_event_heading", "JSON"),
    ("part2_spve_tr_sspRights", "BIGINT"),
    ("part2_spve_tr_conn", "JSON"),
    ("part2_spve_tr_units", "JSON"),
    ("coreData_position", "VARCHAR"),
    ("source", "VARCHAR"),
    ("date", "DATE"),
]


def _wydot_bsm(source: str) -> MessageSchema:
    prefix = "wydot_bsm" if source == "wydot" else f"{source}_bsm"
    return MessageSchema(
        source=source,
        message_type="BSM",
        canonical_version=1,
        read_columns=WYDOT_BSM_READ_COLUMNS,
        required_top_level=("metadata", "payload"),
        canonical_columns=WYDOT_BSM_COLUMNS,
        socrata_columns=WYDOT_BSM_SOCRATA_COLUMNS,
        known_versions=frozenset({1, 3, 4, 5, 6}),
        transform_sql="wydot_bsm.sql",
        view_template="wydot_bsm.sql",
        socrata_view_template="wydot_bsm_socrata.sql",
        view_name=prefix,
        socrata_view_name=f"{prefix}_socrata",
    )


#: (source, message type) -> schema. wydot_backup is the same feed, kept apart.
SCHEMAS: dict[tuple[str, str], MessageSchema] = {
    ("wydot", "BSM"): _wydot_bsm("wydot"),
    ("wydot_backup", "BSM"): _wydot_bsm("wydot_backup"),
}
