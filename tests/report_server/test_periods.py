"""Days, weeks, months, hours and minutes of a time zone as instants, through its clock
changes: the boundaries every report counts between."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from report_server.periods import Period, buckets, day_start, resolve

NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def hours_of(zone: str, day: str) -> list[str]:
    the_day = date.fromisoformat(day)
    return [b.label for b in buckets(Period(the_day, the_day, ZoneInfo(zone)), "hour")]


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("UTC", "2025-03-09", 24),
        ("America/New_York", "2025-03-09", 23),  # clocks forward
        ("America/New_York", "2025-11-02", 25),  # clocks back
        ("Europe/London", "2025-03-30", 23),
        ("Europe/London", "2025-10-26", 25),
        ("Asia/Kolkata", "2025-03-30", 24),
        ("Asia/Kathmandu", "2025-03-30", 24),
        # Back from 03:45 to 02:45: the clock shows hours 02 and 03 twice, each partly.
        ("Pacific/Chatham", "2025-04-06", 26),
        # Forward from 02:45 to 03:45: hour 02 is cut short, 03 starts late.
        ("Pacific/Chatham", "2025-09-28", 24),
    ],
)
def test_a_day_has_the_hours_its_clocks_show(zone: str, day: str, hours: int) -> None:
    assert len(hours_of(zone, day)) == hours


@pytest.mark.parametrize(
    ("zone", "day", "start", "end"),
    [
        ("UTC", "2025-11-14", "2025-11-14T00:00", "2025-11-15T00:00"),
        ("Asia/Kolkata", "2025-11-14", "2025-11-13T18:30", "2025-11-14T18:30"),
        ("Asia/Kathmandu", "2025-11-14", "2025-11-13T18:15", "2025-11-14T18:15"),
        ("America/New_York", "2025-03-09", "2025-03-09T05:00", "2025-03-10T04:00"),
        ("America/New_York", "2025-11-02", "2025-11-02T04:00", "2025-11-03T05:00"),
        ("Europe/London", "2025-10-26", "2025-10-25T23:00", "2025-10-27T00:00"),
        ("Australia/Lord_Howe", "2025-04-06", "2025-04-05T13:00", "2025-04-06T13:30"),
        ("Australia/Lord_Howe", "2025-10-05", "2025-10-04T13:30", "2025-10-05T13:00"),
        ("Pacific/Chatham", "2025-09-28", "2025-09-27T11:15", "2025-09-28T10:15"),
    ],
)
def test_a_day_is_the_instants_from_its_midnight_to_the_next(
    zone: str, day: str, start: str, end: str
) -> None:
    period = Period(date.fromisoformat(day), date.fromisoformat(day), ZoneInfo(zone))

    assert (period.start, period.end) == (utc(start), utc(end))


def test_a_day_whose_midnight_clocks_skip_starts_when_it_begins() -> None:
    # Santiago went from UTC-4 to UTC-3 at midnight: 2025-09-07 began at 01:00.
    assert day_start(date(2025, 9, 7), ZoneInfo("America/Santiago")) == utc("2025-09-07T04:00")


def test_the_hour_that_repeats_appears_twice_told_apart_by_its_offset() -> None:
    hours = hours_of("America/New_York", "2025-11-02")

    assert hours[:3] == [
        "2025-11-02T00:00:00-04:00",
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
    ]


def test_the_hour_clocks_skip_is_absent() -> None:
    hours = hours_of("America/New_York", "2025-03-09")

    assert hours[1:3] == ["2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00"]


def test_hours_of_a_45_minute_offset_start_at_a_quarter_past_in_utc() -> None:
    period = Period(date(2025, 11, 14), date(2025, 11, 14), ZoneInfo("Asia/Kathmandu"))

    first, second = buckets(period, "hour")[:2]

    assert (first.label, first.start) == ("2025-11-14T00:00:00+05:45", utc("2025-11-13T18:15"))
    assert second.start == utc("2025-11-13T19:15")


def test_a_half_hour_shift_back_repeats_half_an_hour() -> None:
    # Lord Howe: at 02:00 (+11) clocks go back to 01:30 (+10:30).
    period = Period(date(2025, 4, 6), date(2025, 4, 6), LORD_HOWE)

    hours = [(b.label, b.start) for b in buckets(period, "hour")][1:4]

    assert hours == [
        ("2025-04-06T01:00:00+11:00", utc("2025-04-05T14:00")),
        ("2025-04-06T01:00:00+10:30", utc("2025-04-05T15:00")),
        ("2025-04-06T02:00:00+10:30", utc("2025-04-05T15:30")),
    ]


def test_a_half_hour_shift_forward_leaves_half_an_hour() -> None:
    # Lord Howe: at 02:00 (+10:30) clocks go forward to 02:30 (+11).
    period = Period(date(2025, 10, 5), date(2025, 10, 5), LORD_HOWE)

    hours = [(b.label, b.start) for b in buckets(period, "hour")][2:4]

    assert hours == [
        ("2025-10-05T02:00:00+11:00", utc("2025-10-04T15:30")),
        ("2025-10-05T03:00:00+11:00", utc("2025-10-04T16:00")),
    ]


def test_minutes_cover_a_day_minute_by_minute() -> None:
    period = Period(date(2025, 11, 14), date(2025, 11, 14), ZoneInfo("Asia/Kolkata"))

    minutes = buckets(period, "minute")

    assert len(minutes) == 1440
    assert (minutes[1].label, minutes[1].start) == (
        "2025-11-14T00:01:00+05:30",
        utc("2025-11-13T18:31"),
    )


def test_weeks_start_on_monday_and_the_first_is_cut_by_the_range() -> None:
    period = Period(date(2025, 11, 12), date(2025, 11, 30), NEW_YORK)  # a Wednesday to a Sunday

    weeks = buckets(period, "week")

    assert [(b.label, b.start) for b in weeks] == [
        ("2025-11-10", utc("2025-11-12T05:00")),
        ("2025-11-17", utc("2025-11-17T05:00")),
        ("2025-11-24", utc("2025-11-24T05:00")),
    ]


def test_months_are_calendar_months() -> None:
    period = Period(date(2025, 1, 15), date(2025, 3, 31), ZoneInfo("Europe/London"))

    assert [b.label for b in buckets(period, "month")] == ["2025-01-01", "2025-02-01", "2025-03-01"]


@pytest.mark.parametrize(
    ("keyword", "first", "last"),
    [
        ("today", "2025-03-12", "2025-03-12"),
        ("yesterday", "2025-03-11", "2025-03-11"),
        ("7d", "2025-03-06", "2025-03-12"),
        ("30d", "2025-02-11", "2025-03-12"),
        ("month", "2025-03-01", "2025-03-31"),
        ("last_month", "2025-02-01", "2025-02-28"),
        ("year", "2025-01-01", "2025-12-31"),
        ("all", "2024-06-01", "2025-03-12"),
    ],
)
def test_range_keywords_name_days_ending_today(keyword: str, first: str, last: str) -> None:
    period = resolve(
        keyword,
        first=None,
        last=None,
        zone=NEW_YORK,
        today=date(2025, 3, 12),
        first_event_day=date(2024, 6, 1),
    )

    assert (period.first, period.last) == (date.fromisoformat(first), date.fromisoformat(last))


def test_the_previous_period_has_as_many_days() -> None:
    period = Period(date(2025, 3, 1), date(2025, 3, 31), NEW_YORK)

    before = period.previous()

    assert (before.first, before.last) == (date(2025, 1, 29), date(2025, 2, 28))
    assert before.end == period.start
    assert period.end - period.start == timedelta(days=31, hours=-1)  # one day of 23 hours
