"""Reports as both doors see them: a checked query in, a Stats summary out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date

import asyncpg
from analytics.v1.report_pb2 import PathViews, Stats

from core.database import POSTGRES_UNAVAILABLE
from core.errors import FieldViolation, InvalidArgument, ResourceExhausted, Unavailable
from core.events import event_type_violations, site_id_violations
from report_server.queries import ALL_TIME_STATS, DAY_STATS, RANGE_STATS

DEFAULT_EVENT_TYPE = "page_view"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# The longest range of days one query may cover: a year, leap day included. A range costs
# time in proportion to its days (it merges one set of rows per day); all time has its own
# aggregates and costs the same whatever the history.
MAX_RANGE_DAYS = 366

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: `\d` takes any script's


@dataclass(frozen=True)
class DayRange:
    """UTC calendar days from `start` to `end`, both included."""

    start: Date
    end: Date


@dataclass(frozen=True)
class StatsQuery:
    site_id: str
    days: DayRange | None  # None: all time
    event_type: str = DEFAULT_EVENT_TYPE
    limit: int = DEFAULT_LIMIT

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
    ) -> StatsQuery:
        """Check a request's fields, applying defaults for the empty ones; raises
        InvalidArgument naming every bad field. `date` is one day; `start_date` and `end_date`
        a range; none of them, all time."""
        violations = site_id_violations(site_id)
        days = _days(date, start_date, end_date, violations)
        event_type = event_type or DEFAULT_EVENT_TYPE
        violations += event_type_violations(event_type)
        if limit is None:
            limit = DEFAULT_LIMIT
        elif not 1 <= limit <= MAX_LIMIT:
            violations.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        return cls(site_id, days, event_type, limit)


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


class StatsReader:
    def __init__(
        self, pool: asyncpg.Pool, acquire_timeout: float, statement_timeout: float
    ) -> None:
        """`acquire_timeout`: seconds a report waits for a connection of the pool;
        `statement_timeout`: the pool's, in seconds, to name it to a client (PostgreSQL
        applies it)."""
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._statement_timeout = statement_timeout

    async def get_stats(self, query: StatsQuery) -> Stats:
        """Raises Unavailable when PostgreSQL cannot be reached, or no connection of the pool
        is free in time; ResourceExhausted when the query runs past the statement timeout."""
        statement = _statement(query)
        try:
            rows = await self._fetch(statement)
        except asyncpg.QueryCanceledError as error:  # before POSTGRES_UNAVAILABLE, which holds it
            # The query costs more than a report may: a retry later, or over fewer days, may
            # finish in time.
            raise ResourceExhausted(
                f"the report ran longer than its bound of {self._statement_timeout:g} seconds; "
                "retry later or ask for fewer days"
            ) from error
        except POSTGRES_UNAVAILABLE as error:
            raise Unavailable("the database is not reachable; retry") from error
        site_id, days = query.site_id, query.days
        start, end = (days.start.isoformat(), days.end.isoformat()) if days else ("", "")
        return Stats(
            site_id=site_id,
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

    async def _fetch(self, statement: Statement) -> list[asyncpg.Record]:
        # Waiting for a connection is bounded, so that reports holding every connection make
        # the others answer 503 rather than queue without end.
        try:
            connection = await self._pool.acquire(timeout=self._acquire_timeout)
        except TimeoutError:
            raise Unavailable(
                f"no database connection was free within {self._acquire_timeout:g} seconds; retry"
            ) from None
        try:
            return await connection.fetch(statement.sql, *statement.args)
        finally:
            await self._pool.release(connection)


@dataclass(frozen=True)
class Statement:
    sql: str
    args: tuple[object, ...]


def _statement(query: StatsQuery) -> Statement:
    """The statement that answers `query`. All time and a single day each read aggregates of
    their own, cheaper than a range's merge of its days' rows."""
    site, kind, days, limit = query.site_id, query.event_type, query.days, query.limit
    if days is None:
        return Statement(ALL_TIME_STATS, (site, kind, limit))
    if days.start == days.end:
        return Statement(DAY_STATS, (site, kind, days.start, limit))
    return Statement(RANGE_STATS, (site, kind, days.start, days.end, limit))
