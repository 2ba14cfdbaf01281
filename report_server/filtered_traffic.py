"""The filtered-traffic report, as both doors see it: the events the ingest servers dropped
(bots, pages of origins a site does not allow) of a site, by day and reason, from the counts
the writer keeps in `filtered_traffic`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date

import asyncpg
from analytics.v1.report_pb2 import FilteredTraffic, FilteredTrafficDay

from core.database import reachable
from core.errors import FieldViolation, InvalidArgument
from core.events import site_id_violations

# The days a request may cover, both ends included: a year, leap day included.
MAX_DAYS = 366

FILTERED_TRAFFIC = """
SELECT day, reason, count FROM filtered_traffic
WHERE site_id = $1 AND day BETWEEN $2 AND $3
ORDER BY day, reason
"""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class FilteredTrafficQuery:
    site_id: str
    start: Date
    end: Date

    @classmethod
    def parse(cls, site_id: str, start_date: str, end_date: str) -> FilteredTrafficQuery:
        """Raises InvalidArgument naming every bad field."""
        violations = site_id_violations(site_id)
        start = _day("start_date", start_date, violations)
        end = _day("end_date", end_date, violations)
        if start is not None and end is not None:
            if end < start:
                violations.append(FieldViolation("end_date", "must not be before start_date"))
            elif (end - start).days >= MAX_DAYS:
                violations.append(
                    FieldViolation(
                        "end_date", f"must be at most {MAX_DAYS - 1} days after start_date"
                    )
                )
        if violations:
            raise InvalidArgument(violations)
        assert start is not None
        assert end is not None
        return cls(site_id, start, end)


def _day(field: str, text: str, violations: list[FieldViolation]) -> Date | None:
    if not text:
        violations.append(FieldViolation(field, "is required"))
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return Date.fromisoformat(text)
    except ValueError:
        violations.append(FieldViolation(field, "must be a calendar date as YYYY-MM-DD"))
        return None


class FilteredTrafficReader:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, query: FilteredTrafficQuery) -> FilteredTraffic:
        """Raises Unavailable when PostgreSQL cannot be reached."""
        async with reachable():
            rows = await self._pool.fetch(FILTERED_TRAFFIC, query.site_id, query.start, query.end)
        return FilteredTraffic(
            site_id=query.site_id,
            start_date=query.start.isoformat(),
            end_date=query.end.isoformat(),
            days=[
                FilteredTrafficDay(
                    day=row["day"].isoformat(), reason=row["reason"], count=row["count"]
                )
                for row in rows
            ],
            total=sum(row["count"] for row in rows),
        )
