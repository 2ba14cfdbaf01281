"""Reports as both doors see them: a checked query in, a Stats summary out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date

import asyncpg
from analytics.v1.report_pb2 import PathViews, Stats

from ingest_server.validation import event_type_violations, site_id_violations
from report_server.queries import ALL_TIME_TOP_PATHS, ALL_TIME_TOTALS, DAY_TOP_PATHS, DAY_TOTALS
from stack.connections import POSTGRES_UNAVAILABLE
from stack.errors import FieldViolation, InvalidArgument, Unavailable

DEFAULT_EVENT_TYPE = "page_view"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class StatsQuery:
    site_id: str
    day: Date | None  # None: all time
    event_type: str = DEFAULT_EVENT_TYPE
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(
        cls, site_id: str, date: str = "", event_type: str = "", limit: int | None = None
    ) -> StatsQuery:
        """Check a request's fields, applying defaults for the empty ones; raises
        InvalidArgument naming every bad field."""
        violations = site_id_violations(site_id)
        day = None
        if date:
            try:
                if not _DATE.fullmatch(date):
                    raise ValueError
                day = Date.fromisoformat(date)
            except ValueError:
                violations.append(FieldViolation("date", "must be a calendar date as YYYY-MM-DD"))
        event_type = event_type or DEFAULT_EVENT_TYPE
        violations += event_type_violations(event_type)
        if limit is None:
            limit = DEFAULT_LIMIT
        elif not 1 <= limit <= MAX_LIMIT:
            violations.append(FieldViolation("limit", f"must be between 1 and {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        return cls(site_id, day, event_type, limit)


class StatsReader:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_stats(self, query: StatsQuery) -> Stats:
        """Raises Unavailable when PostgreSQL cannot be reached."""
        try:
            async with self._pool.acquire() as connection:
                if query.day is None:
                    totals = await connection.fetchrow(
                        ALL_TIME_TOTALS, query.site_id, query.event_type
                    )
                    paths = await connection.fetch(
                        ALL_TIME_TOP_PATHS, query.site_id, query.event_type, query.limit
                    )
                else:
                    totals = await connection.fetchrow(
                        DAY_TOTALS, query.site_id, query.event_type, query.day
                    )
                    paths = await connection.fetch(
                        DAY_TOP_PATHS, query.site_id, query.event_type, query.day, query.limit
                    )
        except POSTGRES_UNAVAILABLE as error:
            raise Unavailable("the database is not reachable; retry") from error
        return Stats(
            site_id=query.site_id,
            date=query.day.isoformat() if query.day else "",
            total_views=totals["views"] if totals else 0,
            unique_users=totals["users"] if totals else 0,
            top_paths=[PathViews(path=row["path"], views=row["views"]) for row in paths],
        )
