"""GetStats, the seeds' summary, as both doors see it: a checked query in, a Stats out.

Days are those of the site's time zone unless the query names another. In the site's zone
the summary reads the aggregates the writer keeps by the site's days; in another zone it
counts the events between the instants that zone's days start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import date as Date
from zoneinfo import ZoneInfo

from analytics.v1.report_pb2 import PathViews, Stats

from core.errors import FieldViolation, InvalidArgument
from core.events import event_type_violations, site_id_violations
from report_server.database import ReportDatabase
from report_server.periods import RANGE_KEYWORDS, day_start, resolve
from report_server.queries import ALL_TIME_STATS, DAY_STATS, RANGE_STATS, ZONED_STATS
from report_server.report_queries import SITE_FACTS
from report_server.scope import time_zone_of

DEFAULT_EVENT_TYPE = "page_view"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# The longest range of days one query may cover: a year, leap day included. A range costs
# time in proportion to its days (it merges one set of rows per day, and of paths per whole
# week or day outside one); all time has its own aggregates and costs the same whatever the
# history.
MAX_RANGE_DAYS = 366

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: `\d` takes any script's


@dataclass(frozen=True)
class DayRange:
    """Calendar days from `start` to `end`, both included."""

    start: Date
    end: Date


@dataclass(frozen=True)
class StatsQuery:
    site_id: str
    days: DayRange | None  # None: all time
    event_type: str = DEFAULT_EVENT_TYPE
    limit: int = DEFAULT_LIMIT
    zone: ZoneInfo | None = None  # None: the site's
    keyword: str = ""  # a range keyword other than "all", resolved when read

    @classmethod
    def parse(
        cls,
        site_id: str,
        date: str = "",
        event_type: str = "",
        limit: int | None = None,
        *,
        start_date: str = "",
        end_date: str = "",
        timezone: str = "",
        range_keyword: str = "",
    ) -> StatsQuery:
        """Check a request's fields, applying defaults for the empty ones; raises
        InvalidArgument naming every bad field. `date` is one day; `start_date` and `end_date`
        a range; `range_keyword` names days; none of them, all time."""
        violations = site_id_violations(site_id)
        zone = time_zone_of(timezone, "timezone", violations) if timezone else None
        if range_keyword:
            if date or start_date or end_date:
                violations.append(
                    FieldViolation("range", "must not be given with date, start_date or end_date")
                )
            elif range_keyword not in RANGE_KEYWORDS:
                violations.append(
                    FieldViolation(
                        "range",
                        f"must be one of {', '.join(RANGE_KEYWORDS)}, got {range_keyword[:32]!r}",
                    )
                )
        days = _days(date, start_date, end_date, violations)
        event_type = event_type or DEFAULT_EVENT_TYPE
        violations += event_type_violations(event_type)
        if limit is None:
            limit = DEFAULT_LIMIT
        elif not 1 <= limit <= MAX_LIMIT:
            violations.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        keyword = "" if range_keyword == "all" else range_keyword
        return cls(site_id, days, event_type, limit, zone, keyword)


def _days(
    date: str, start_date: str, end_date: str, violations: list[FieldViolation]
) -> DayRange | None:
    """The days a request asks for (None: all time), adding what is wrong to `violations`."""
    if date:
        if start_date or end_date:
            violations.append(
                FieldViolation("date", "must not be given with start_date or end_date")
            )
            return None
        day = _calendar_day("date", date, violations)
        return None if day is None else DayRange(day, day)
    if not start_date and not end_date:
        return None
    start = _calendar_day("start_date", start_date, violations) if start_date else None
    end = _calendar_day("end_date", end_date, violations) if end_date else None
    if not start_date:
        violations.append(FieldViolation("start_date", "is required with end_date"))
    if not end_date:
        violations.append(FieldViolation("end_date", "is required with start_date"))
    if start is None or end is None:
        return None
    if end < start:
        violations.append(FieldViolation("end_date", "must not be before start_date"))
    elif (end - start).days >= MAX_RANGE_DAYS:
        violations.append(
            FieldViolation(
                "end_date", f"must be at most {MAX_RANGE_DAYS - 1} days after start_date"
            )
        )
    return DayRange(start, end)


def _calendar_day(field: str, text: str, violations: list[FieldViolation]) -> Date | None:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return Date.fromisoformat(text)
    except ValueError:
        violations.append(FieldViolation(field, "must be a calendar date as YYYY-MM-DD"))
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class StatsReader:
    def __init__(self, database: ReportDatabase, clock: Callable[[], datetime] = _now) -> None:
        self._database = database
        self._clock = clock

    async def get_stats(self, query: StatsQuery) -> Stats:
        """Raises Unavailable and ResourceExhausted as ReportDatabase.fetch does."""
        days = query.days
        statement = None
        if query.zone is not None or query.keyword:
            days, statement = await self._zoned(query)
        if statement is None:
            statement = _statement(query.site_id, query.event_type, days, query.limit)
        rows = await self._database.fetch(statement.sql, *statement.args)
        start, end = (days.start.isoformat(), days.end.isoformat()) if days else ("", "")
        return Stats(
            site_id=query.site_id,
            date=start if start == end else "",
            start_date=start,
            end_date=end,
            total_views=rows[0]["total_views"],
            unique_users=rows[0]["unique_users"],
            top_paths=[
                PathViews(path=row["path"], views=row["views"])
                for row in rows
                if row["path"] is not None
            ],
        )

    async def _zoned(self, query: StatsQuery) -> tuple[DayRange | None, Statement | None]:
        """The days a query with a zone or a keyword covers, and, when its zone is not the
        site's, the statement counting its events between that zone's days (None: the
        aggregates, kept by the site's days, answer)."""
        [facts] = await self._database.fetch(SITE_FACTS, query.site_id)
        site_zone = ZoneInfo(facts["time_zone"] or "UTC")
        zone = query.zone or site_zone
        days = query.days
        if query.keyword:
            today = self._clock().astimezone(zone).date()
            period = resolve(
                query.keyword, first=None, last=None, zone=zone, today=today, first_event_day=None
            )
            days = DayRange(period.first, period.last)
        if days is None or zone == site_zone:
            return days, None
        start, end = day_start(days.start, zone), day_start(days.end + timedelta(days=1), zone)
        args = (query.site_id, query.event_type, start, end, query.limit)
        return days, Statement(ZONED_STATS, args)


@dataclass(frozen=True)
class Statement:
    sql: str
    args: tuple[object, ...]


def _statement(site: str, kind: str, days: DayRange | None, limit: int) -> Statement:
    """The statement that answers from the aggregates. All time and a single day each read
    aggregates of their own, cheaper than a range's merge of its days' rows."""
    if days is None:
        return Statement(ALL_TIME_STATS, (site, kind, limit))
    if days.start == days.end:
        return Statement(DAY_STATS, (site, kind, days.start, limit))
    return Statement(RANGE_STATS, (site, kind, days.start, days.end, limit, *whole_weeks(days)))


def whole_weeks(days: DayRange) -> tuple[Date, Date]:
    """The weeks (Monday to Sunday) wholly inside `days`: the first one's Monday and the Monday
    after the last one; both the day after `days` when there is none."""
    first = days.start + timedelta(days=(7 - days.start.weekday()) % 7)
    after = days.end + timedelta(days=1)
    until = after - timedelta(days=after.weekday())
    if until <= first:
        return after, after
    return first, until
