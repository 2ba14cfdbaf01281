from __future__ import annotations

from datetime import date

import pytest

from core.errors import FieldViolation, InvalidArgument
from report_server.stats import DayRange, StatsQuery, whole_weeks


def violations_of(**fields: object) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        StatsQuery.parse(**fields)  # type: ignore[arg-type]
    return list(caught.value.violations)


def test_defaults_are_page_views_and_ten_paths_for_all_time() -> None:
    assert StatsQuery.parse("site-1") == StatsQuery("site-1", None, "page_view", 10)


def test_a_date_selects_that_day() -> None:
    query = StatsQuery.parse("site-1", "2025-11-14", "signup", 3)

    assert query == StatsQuery(
        "site-1", DayRange(date(2025, 11, 14), date(2025, 11, 14)), "signup", 3
    )


def test_a_start_and_an_end_date_select_the_days_between_both_included() -> None:
    query = StatsQuery.parse("site-1", start_date="2025-10-31", end_date="2025-11-29")

    assert query.days == DayRange(date(2025, 10, 31), date(2025, 11, 29))


def test_a_range_may_be_one_day() -> None:
    query = StatsQuery.parse("site-1", start_date="2025-11-14", end_date="2025-11-14")

    assert query.days == DayRange(date(2025, 11, 14), date(2025, 11, 14))


def test_a_range_may_cover_366_days() -> None:
    query = StatsQuery.parse("site-1", start_date="2024-01-01", end_date="2024-12-31")

    assert query.days == DayRange(date(2024, 1, 1), date(2024, 12, 31))


def test_a_range_of_367_days_is_refused() -> None:
    assert violations_of(site_id="s", start_date="2024-01-01", end_date="2025-01-01") == [
        FieldViolation("end_date", "must be at most 365 days after start_date")
    ]


def test_an_end_before_the_start_is_refused() -> None:
    assert violations_of(site_id="s", start_date="2025-11-14", end_date="2025-11-13") == [
        FieldViolation("end_date", "must not be before start_date")
    ]


def test_a_start_without_an_end_is_refused() -> None:
    assert violations_of(site_id="s", start_date="2025-11-14") == [
        FieldViolation("end_date", "is required with start_date")
    ]


def test_an_end_without_a_start_is_refused() -> None:
    assert violations_of(site_id="s", end_date="2025-11-14") == [
        FieldViolation("start_date", "is required with end_date")
    ]


@pytest.mark.parametrize("bound", ["start_date", "end_date"])
def test_a_date_with_a_range_bound_is_refused(bound: str) -> None:
    assert violations_of(site_id="s", date="2025-11-14", **{bound: "2025-11-14"}) == [
        FieldViolation("date", "must not be given with start_date or end_date")
    ]


def test_the_site_id_is_required() -> None:
    assert violations_of(site_id="") == [FieldViolation("site_id", "is required")]


@pytest.mark.parametrize(
    "day", ["2025-13-01", "2025-02-30", "14/11/2025", "2025-1-4", "today", "\uff12025-11-14"]
)
@pytest.mark.parametrize("field", ["date", "start_date", "end_date"])
def test_a_date_that_is_not_a_calendar_day_is_refused(field: str, day: str) -> None:
    other = {"start_date": "end_date", "end_date": "start_date"}.get(field)
    fields = {field: day} | ({other: "2025-11-14"} if other else {})

    assert violations_of(site_id="s", **fields) == [
        FieldViolation(field, "must be a calendar date as YYYY-MM-DD")
    ]


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_limit_outside_1_to_1000_is_refused(limit: int) -> None:
    assert violations_of(site_id="s", limit=limit) == [
        FieldViolation("limit", "must be between 1 and 1000")
    ]


def test_a_limit_of_1000_is_accepted() -> None:
    assert StatsQuery.parse("s", limit=1000).limit == 1000


def test_every_bad_field_is_named() -> None:
    assert violations_of(site_id="a b", date="x", event_type=" x", limit=0) == [
        FieldViolation(
            "site_id",
            "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
        ),
        FieldViolation("date", "must be a calendar date as YYYY-MM-DD"),
        FieldViolation("event_type", "must not start or end with whitespace"),
        FieldViolation("limit", "must be between 1 and 1000"),
    ]


def test_every_bad_bound_of_a_range_is_named() -> None:
    assert violations_of(site_id="s", start_date="x", end_date="2025-02-30") == [
        FieldViolation("start_date", "must be a calendar date as YYYY-MM-DD"),
        FieldViolation("end_date", "must be a calendar date as YYYY-MM-DD"),
    ]


def test_the_whole_weeks_of_a_range_run_from_its_first_monday_to_its_last_sunday() -> None:
    # Wednesday the 5th to Wednesday the 26th of November 2025.
    days = DayRange(date(2025, 11, 5), date(2025, 11, 26))

    assert whole_weeks(days) == (date(2025, 11, 10), date(2025, 11, 24))


def test_a_range_from_a_monday_to_a_sunday_is_whole_weeks() -> None:
    days = DayRange(date(2025, 11, 10), date(2025, 11, 23))

    assert whole_weeks(days) == (date(2025, 11, 10), date(2025, 11, 24))


def test_a_range_without_a_whole_week_has_none_after_its_last_day() -> None:
    # Tuesday the 11th to Monday the 17th: seven days, but no Monday to Sunday.
    days = DayRange(date(2025, 11, 11), date(2025, 11, 17))

    assert whole_weeks(days) == (date(2025, 11, 18), date(2025, 11, 18))
