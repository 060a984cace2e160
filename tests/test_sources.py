"""Local days map to the folder hours (and so partitions) that hold them, in the producer's clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cvcatalog.sources.bucket import PartitionKey, folder_hours, partitions_for, utc_window


def test_a_denver_day_spans_two_utc_dates() -> None:
    lo, hi = utc_window(date(2021, 4, 1), date(2021, 4, 1), "America/Denver")
    assert lo == datetime(2021, 4, 1, 6, tzinfo=UTC) and hi == datetime(2021, 4, 2, 6, tzinfo=UTC)
    hours = folder_hours("wydot", lo, hi)
    assert hours[0] == (date(2021, 4, 1), 6) and hours[-1] == (date(2021, 4, 2), 5)
    assert len(hours) == 24
    keys = [
        p.key
        for p in partitions_for(
            "wydot", "BSM", date(2021, 4, 1), date(2021, 4, 1), "America/Denver"
        )
    ]
    assert keys == ["wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"]


def test_a_utc_week_is_seven_partitions_and_a_denver_week_eight() -> None:
    assert len(partitions_for("wydot", "BSM", date(2021, 4, 1), date(2021, 4, 7), "UTC")) == 7
    assert (
        len(partitions_for("wydot", "BSM", date(2021, 4, 1), date(2021, 4, 7), "America/Denver"))
        == 8
    )


def test_thea_folders_are_eastern_time_across_dst() -> None:
    # 2019-03-10: US spring-forward; the ET folder hour 02 does not exist that day.
    lo = datetime(2019, 3, 10, 5, tzinfo=UTC)  # 00:00 EST
    hi = datetime(2019, 3, 11, 4, tzinfo=UTC)  # 00:00 EDT next day
    hours = folder_hours("thea", lo, hi)
    assert (date(2019, 3, 10), 2) not in hours
    assert len(hours) == 23
    # 2019-11-03: fall-back; wall hour 01 happens twice but is one folder.
    lo = datetime(2019, 11, 3, 4, tzinfo=UTC)
    hi = datetime(2019, 11, 4, 5, tzinfo=UTC)
    hours = folder_hours("thea", lo, hi)
    assert hours.count((date(2019, 11, 3), 1)) == 1 and len(hours) == 24


def test_partition_key_layout() -> None:
    pk = PartitionKey("wydot_backup", "BSM", date(2021, 4, 1))
    assert pk.key == "wydot_backup/BSM/2021/04/01"
    assert pk.hour_prefix(7) == "wydot_backup/BSM/2021/04/01/07/"
    assert pk.hive_dir == "source=wydot_backup/message_type=BSM/year=2021/month=04/day=01"


@given(
    st.dates(min_value=date(2017, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=20),
    st.sampled_from(
        ["UTC", "America/Denver", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"]
    ),
)
@settings(deadline=None)  # pure computation; its time on a loaded 2-core machine varies 10x
def test_every_requested_hour_is_covered_exactly_once(start: date, span: int, tz: str) -> None:
    end = date.fromordinal(start.toordinal() + span)
    lo, hi = utc_window(start, end, tz)
    hours = folder_hours("wydot", lo, hi)
    assert len(hours) == len(set(hours)) == int((hi - lo).total_seconds() // 3600)
    days = {p.day for p in partitions_for("wydot", "BSM", start, end, tz)}
    assert days == {d for d, _ in hours}


def test_nycdot_partitions_are_bins_of_the_months_touched() -> None:
    keys = partitions_for(
        "nycdot", "EVENT", date(2021, 4, 28), date(2021, 5, 2), "America/New_York"
    )
    assert len(keys) == 2 * 8 * 6
    assert keys[0].key == "nycdot/EVENT/2021/04/MON/NT"
    assert (
        keys[-1].hive_dir
        == "source=nycdot/message_type=EVENT/year=2021/month=05/weekday=NA/time_bin=NA"
    )
    assert keys[0].last_day == date(2021, 4, 30)


@given(
    st.sampled_from(["wydot", "wydot_backup", "thea", "nycdot"]),
    st.dates(min_value=date(2017, 1, 1), max_value=date(2030, 12, 31)),
)
def test_partition_keys_parse_back(source: str, day: date) -> None:
    mt = {"nycdot": "EVENT"}.get(source, "BSM")
    for pk in partitions_for(source, mt, day, day, "UTC"):
        assert PartitionKey.parse(pk.key) == pk


def test_malformed_keys_are_refused() -> None:
    import pytest

    for bad in [
        "wydot/BSM/2021/04",
        "nycdot/EVENT/2021/04/XXX/AM",
        "../BSM/2021/04/01",
        "wydot/BSM/2021/13/01",
    ]:
        with pytest.raises(ValueError):
            PartitionKey.parse(bad)
