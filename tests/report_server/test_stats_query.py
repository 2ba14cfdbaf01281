from __future__ import annotations

from datetime import date

import pytest

from report_server.stats import StatsQuery
from stack.errors import FieldViolation, InvalidArgument


def violations_of(**fields: object) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        StatsQuery.parse(**fields)  # type: ignore[arg-type]
    return list(caught.value.violations)


def test_defaults_are_page_views_and_ten_paths_for_all_time() -> None:
    assert StatsQuery.parse("site-1") == StatsQuery("site-1", None, "page_view", 10)


def test_a_date_selects_that_day() -> None:
    query = StatsQuery.parse("site-1", "2025-11-14", "signup", 3)

    assert query == StatsQuery("site-1", date(2025, 11, 14), "signup", 3)


def test_the_site_id_is_required() -> None:
    assert violations_of(site_id="") == [FieldViolation("site_id", "is required")]


@pytest.mark.parametrize("day", ["2025-13-01", "2025-02-30", "14/11/2025", "2025-1-4", "today"])
def test_a_date_that_is_not_a_calendar_day_is_refused(day: str) -> None:
    assert violations_of(site_id="s", date=day) == [
        FieldViolation("date", "must be a calendar date as YYYY-MM-DD")
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
