"""Ranges of days and their buckets in a time zone, as instants: what a report counts.

Every report counts the events whose instant falls in [start, end) of its period, and a series
puts each in the bucket whose start it is at or after. The instants come from the tz database
(zoneinfo), so days of 23 and 25 hours, half-hour and 45-minute offsets and Lord Howe's
30-minute shift are exact: nothing here assumes an hour is 60 minutes of wall time.

A day starts at the first instant whose local date is that day (midnight, or the end of a gap
that swallowed midnight). An hour or minute bucket is the instants sharing a local date, hour
(and minute) and UTC offset: when clocks go back, the repeated hour appears twice, told apart
by its offset; when they go forward, the skipped hour is absent.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Every UTC offset of the tz database since 1970 is a whole number of quarter hours, and so is
# every transition: walking instants by this step meets every change of local hour.
QUARTER_HOUR = timedelta(minutes=15)
MINUTE = timedelta(minutes=1)
RANGE_KEYWORDS = ("today", "yesterday", "7d", "30d", "month", "last_month", "year", "all")
INTERVALS = ("minute", "hour", "day", "week", "month")
MAX_BUCKETS = 1000
# The longest range each interval may cover, in days.
MAX_DAYS = {"minute": 1, "hour": 31}


@dataclass(frozen=True)
class Period:
    """The calendar days from `first` to `last`, both included, in `zone`."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return day_start(self.first, self.zone)

    @property
    def end(self) -> datetime:
        return day_start(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period of as many days just before this one."""
        return Period(
            self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.zone
        )


@dataclass(frozen=True)
class Bucket:
    label: str
    start: datetime  # UTC


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose date in `zone` is `day`."""
    instant = datetime.combine(day, time(0), zone).astimezone(UTC)
    # Midnight in a gap: the instant zoneinfo gives may fall on the day before.
    while instant.astimezone(zone).date() < day:
        instant += QUARTER_HOUR
    return instant


def resolve(
    keyword: str,
    *,
    first: date | None,
    last: date | None,
    zone: ZoneInfo,
    today: date,
    first_event_day: date | None,
) -> Period:
    """The period a keyword (or, with none, explicit days) names, `today` being today's date in
    `zone`. Arguments are assumed checked (see report_server.scope)."""
    if not keyword:
        assert first is not None
        assert last is not None
        return Period(first, last, zone)
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    days = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "7d": (today - timedelta(days=6), today),
        "30d": (today - timedelta(days=29), today),
        "month": (month_start, _month_end(today)),
        "last_month": (last_month_end.replace(day=1), last_month_end),
        "year": (date(today.year, 1, 1), date(today.year, 12, 31)),
        "all": (min(first_event_day or today, today), today),
    }
    return Period(*days[keyword], zone)


def buckets(period: Period, interval: str) -> list[Bucket]:
    """The buckets of `interval` over the period, in order; the first starts at the period's
    start (a week or month cut by the range starts there too, labelled by its own first day)."""
    if interval in ("minute", "hour"):
        return list(
            _clock_buckets(
                period,
                MINUTE if interval == "minute" else QUARTER_HOUR,
                _minute_key if interval == "minute" else _hour_key,
            )
        )
    starts = _calendar_starts(period, interval)
    return [
        Bucket(label.isoformat(), max(day_start(label, period.zone), period.start))
        for label in starts
    ]


def bucket_count(period: Period, interval: str) -> int:
    """About how many buckets `buckets` makes (exact but for clock changes), cheaply."""
    if interval == "minute":
        return period.days * 1440
    if interval == "hour":
        return period.days * 24
    return len(_calendar_starts(period, interval))


def _calendar_starts(period: Period, interval: str) -> list[date]:
    """The first day of each day, ISO week or month the period touches."""
    if interval == "day":
        return [period.first + timedelta(days=n) for n in range(period.days)]
    if interval == "week":
        monday = period.first - timedelta(days=period.first.weekday())
        weeks = (period.last - monday).days // 7 + 1
        return [monday + timedelta(weeks=n) for n in range(weeks)]
    months = []
    month = period.first.replace(day=1)
    while month <= period.last:
        months.append(month)
        month = _month_end(month) + timedelta(days=1)
    return months


def _clock_buckets(
    period: Period, step: timedelta, key: Callable[[datetime], tuple[object, ...]]
) -> Iterator[Bucket]:
    """Walk the period's instants by `step`, starting a bucket where the local key changes."""
    instant, end = period.start, period.end
    previous: tuple[object, ...] | None = None
    while instant < end:
        local = instant.astimezone(period.zone)
        current = key(local)
        if current != previous:
            yield Bucket(_clock_label(local, step), instant)
            previous = current
        instant += step


def _hour_key(local: datetime) -> tuple[object, ...]:
    return (local.date(), local.hour, local.utcoffset())


def _minute_key(local: datetime) -> tuple[object, ...]:
    return (local.date(), local.hour, local.minute, local.utcoffset())


def _clock_label(local: datetime, step: timedelta) -> str:
    """The bucket's wall-clock start with the offset of its instants: the hour (or minute) it
    is in, even when its first instant is later (an hour that starts at :30 after a half-hour
    shift). Written out rather than by isoformat, which would give a wall-clock time that
    exists only at the other offset (01:00 when clocks went back at 02:00 to 01:30) that
    offset."""
    minute = 0 if step == QUARTER_HOUR else local.minute
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%dT%H}:{minute:02d}:00{offset[:3]}:{offset[3:]}"


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])
