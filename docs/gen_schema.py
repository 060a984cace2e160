"""Regenerate docs/schema.md from the schema registry: `python docs/gen_schema.py`."""

from __future__ import annotations

from pathlib import Path

from cvcatalog.schemas import SCHEMAS
from cvcatalog.views import union_views


def main() -> None:
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
    Path(__file__).with_name("schema.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
