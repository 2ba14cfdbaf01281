"""The report service's HTTP door: `GET /stats`, the seeds' shape.

It reads the query string into the StatsQuery the gRPC door builds from its request and calls
the same StatsReader; it holds no rule of its own.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from analytics.v1.report_pb2 import Stats

from core.errors import FieldViolation, InvalidArgument
from report_server.stats import MAX_LIMIT, StatsQuery, StatsReader
from transports.http_app import Reply, Request, Routes, query_parameters

STATS_PARAMETERS = ("site_id", "date", "start_date", "end_date", "event_type", "limit")


def routes(reader: StatsReader) -> Routes:
    return {"/stats": {"GET": _StatsRoutes(reader).get_stats}}


class _StatsRoutes:
    def __init__(self, reader: StatsReader) -> None:
        self._reader = reader

    async def get_stats(self, request: Request) -> Reply:
        params, violations = query_parameters(request, STATS_PARAMETERS)
        limit = params.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) < 10):
            violations.append(FieldViolation("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        stats_query = StatsQuery.parse(
            params.get("site_id", ""),
            params.get("date", ""),
            params.get("event_type", ""),
            int(limit) if limit is not None else None,
            start_date=params.get("start_date", ""),
            end_date=params.get("end_date", ""),
        )
        return Reply(HTTPStatus.OK, stats_to_json(await self._reader.get_stats(stats_query)))


def stats_to_json(stats: Stats) -> dict[str, Any]:
    """The seeds' shape, with the days covered after `date` (nulls for all time)."""
    return {
        "site_id": stats.site_id,
        "date": stats.date or None,
        "start_date": stats.start_date or None,
        "end_date": stats.end_date or None,
        "total_views": stats.total_views,
        "unique_users": stats.unique_users,
        "top_paths": [{"path": p.path, "views": p.views} for p in stats.top_paths],
    }
