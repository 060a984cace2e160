"""Regenerate docs/schema.md from the schema registry: `python docs/gen_schema.py`."""

from __future__ import annotations

from pathlib import Path

from cvcatalog.schemas import SCHEMAS
from cvcatalog.state.tables import union_views

#: What the versions of each (source, type) look like, for the table above.
VERSION_NOTES: dict[tuple[str, str], str] = {
    ("wydot", "BSM"): (
        "ODE output (usdot-jpo-ode/jpo-ode): 1 `generatedAt`/`receivedAt`; 2 (Sept. 2017) "
        "`generatedAt`/`generatedBy`/`odeReceivedAt`; 3 (Oct. 2017) `recordGeneratedAt`/"
        "`recordGeneratedBy`; 4 (Jan. 2018) `securityResultCode` replaces `validSignature`; "
        "5 (May 2018) `receivedMessageDetails` on every record; 6 (Sept. 2018); 7 (2024) adds "
        "`asn1`, `odePacketID`, `maxDurationTime`, `originIp`; 8 (Dec. 2024, J2735 2024) renames "
        "deprecated partII fields `doNotUse*` (trailers, sspRights, trailerWeight, ...), read "
        "under their old socrata names. coreData is the same in every version; an empty "
        "`recordGeneratedAt` (v8, UDP) counts as missing"
    ),
    ("wydot", "TIM"): (
        "metadata as for BSM. TravelerInformation in `payload.data.MessageFrame.value` (1-7), "
        "in an SDX `AdvisorySituationData` envelope (6), or `payload.data` itself without a "
        "MessageFrame (TMC-generated TIMs of 2020 on, dataType `...travelerinformation."
        "TravelerInformation`, and every 8). 7 (J2735 2020) writes values as strings and names "
        "the SSP indexes `notUsed`..`notUsed3`, 8 (J2735 2024) `doNotUse1`..`doNotUse4` and "
        "HeadingSlices as 16 booleans: all read into the same columns; `metadata.request.sdw` "
        "(record id, ttl, service region) on every row"
    ),
    ("thea", "BSM"): "THEA's own record layout, raw J2735 strings",
    ("thea", "SPAT"): "THEA's own record layout, raw J2735 strings",
    ("thea", "TIM"): "THEA's own record layout, raw J2735 strings",
    ("nycdot", "EVENT"): "the NYCDOT event format (one published version)",
}


def main() -> None:
    Path(__file__).with_name("schema.md").write_text(render())


def render() -> str:
    """docs/schema.md's text."""
    out = [
        "# Schemas",
        "",
        "Generated from `cvcatalog.schemas.SCHEMAS` by `python docs/gen_schema.py`; "
        "`cvcatalog schema --source S --type T [--socrata]` prints the same.",
        "",
        "Every view has the canonical columns of its (source, type), then the partition columns "
        "taken from the hive directories (`source`, `message_type`, `date`, `year`, `month`, "
        "`day`; NYCDOT: `year`, `month`, `weekday`, `time_bin`). Units are SI (degrees, metres, "
        "m/s) unless a column name says otherwise; THEA's raw J2735 strings are converted with "
        "its data dictionaries and sentinels become NULL. `invalid_reason` is NULL for valid rows "
        "(rows with a reason appear only when `validation.drop_invalid_records` is false); "
        "`warnings` lists out-of-range values that were kept.",
        "",
        "The partition `date` (and `year`, `month`, `day`) is the bucket folder's day, on the "
        "producer's clock: UTC for WYDOT, US Eastern for THEA (a THEA record generated at "
        "2021-04-02T03:58Z sits under `date = 2021-04-01`). A range given to `ingest` or "
        "`to_dask` is in its `timezone` (UTC unless given) and cuts rows by their time, so "
        "`to_dask(\"thea\", \"BSM\", \"2021-04-01\", \"2021-04-02\")` is not "
        "`date BETWEEN '2021-04-01' AND '2021-04-02'`; `timezone=\"America/New_York\"` gives "
        "THEA's own days. NYCDOT's events carry no time, only New York month, weekday and "
        "time-of-day bins, so a range selects whole months on New York's clock: with the "
        "default UTC, `--start 2021-05-01` begins at 2021-04-30 20:00 in New York and takes "
        "April's bins too; give `--timezone America/New_York` for May's alone.",
        "",
        "THEA's times (`metadata.recordGeneratedAt`, US Eastern wall time such as "
        "`2019-01-14 00:20:30.046 [ET]`) are stored in UTC. The text carries no offset, so at "
        "the DST changes one reading is chosen: a wall time that occurs twice in November "
        "(01:00-01:59) is read as its second, standard-time occurrence (`2021-11-07 01:30 [ET]` "
        "is 06:30Z, never 05:30Z), and one that does not exist in March (02:00-02:59) as "
        "standard time (`2021-03-14 02:30 [ET]` is 07:30Z). A record of the first November "
        "hour thus sits an hour late in `generated_at`.",
        "",
        "## Supported schema versions",
        "",
        "`metadata.schemaVersion` values each (source, type) is written against. A record of "
        "another version is parsed for the fields that are known, never quarantined only "
        "because its version is new, and noted by `cvcatalog ingest`; WYDOT rows of another "
        "version also carry the warning `unknown_schema_version_<n>`, which `cvcatalog report "
        "validation` counts per version (kind `warning`). `wydot_backup` is the same feed as "
        "`wydot`.",
        "",
        "| source | type | versions | shapes |",
        "|---|---|---|---|",
    ]
    for (source, mt), s in sorted(SCHEMAS.items()):
        if source == "wydot_backup":
            continue
        versions = ", ".join(str(v) for v in sorted(s.known_versions))
        out.append(f"| {source} | {mt} | {versions} | {VERSION_NOTES.get((source, mt), '')} |")
    out += [
        "",
        "## Union views",
        "",
    ]
    for name, schemas in union_views().items():
        out.append(f"- `{name}`: " + ", ".join(f"`{s.view_name}`" for s in schemas)
                   + " (the columns they share by name and type)")
    for (source, mt), s in sorted(SCHEMAS.items()):
        if source == "wydot_backup":
            continue  # identical to wydot
        out += ["", f"## `{s.view_name}` ({source}/{mt}, canonical v{s.canonical_version})", ""]
        if source == "wydot":
            out.append(f"`wydot_backup_{mt.lower()}` has the same columns.")
            out.append("")
        out += ["| column | type |", "|---|---|"]
        out += [f"| `{c}` | {t} |" for c, t in s.view_columns]
        out += ["", f"Socrata view `{s.socrata_view_name}`: "
                + ", ".join(f"`{c}`" for c, _ in s.socrata_columns)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
