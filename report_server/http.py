"""The report service's HTTP door: `GET /stats` (the seeds' shape), the site registry
(`/sites`, `/sites/{site_id}`) and `GET /filtered-traffic`.

It reads query strings and JSON bodies into the arguments the gRPC door passes, and calls the
same StatsReader and SiteRegistry; it holds no rule of its own.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from analytics.v1.report_pb2 import FilteredTraffic, Stats

from core.errors import FieldViolation, InvalidArgument
from core.sites import Site
from report_server.filtered_traffic import FilteredTrafficQuery, FilteredTrafficReader
from report_server.sites import SiteChanges, SiteRegistry
from report_server.stats import MAX_LIMIT, StatsQuery, StatsReader
from transports.http_app import Reply, Request, Routes, json_body, query_parameters
from transports.http_json import is_short_text, not_text

STATS_PARAMETERS = ("site_id", "date", "start_date", "end_date", "event_type", "limit")


def routes(
    reader: StatsReader,
    registry: SiteRegistry,
    max_body_bytes: int,
    filtered: FilteredTrafficReader,
) -> Routes:
    sites = _SiteRoutes(registry, max_body_bytes)
    return {
        "/stats": {"GET": _StatsRoutes(reader).get_stats},
        "/sites": {"GET": sites.list, "POST": sites.create},
        "/sites/{site_id}": {"GET": sites.get, "PATCH": sites.update},
        "/filtered-traffic": {"GET": _FilteredTrafficRoutes(filtered).get},
    }


class _FilteredTrafficRoutes:
    def __init__(self, reader: FilteredTrafficReader) -> None:
        self._reader = reader

    async def get(self, request: Request) -> Reply:
        params, violations = query_parameters(request, ("site_id", "start_date", "end_date"))
        if violations:
            raise InvalidArgument(violations)
        query = FilteredTrafficQuery.parse(
            params.get("site_id", ""), params.get("start_date", ""), params.get("end_date", "")
        )
        return Reply(HTTPStatus.OK, filtered_traffic_to_json(await self._reader.get(query)))


def filtered_traffic_to_json(report: FilteredTraffic) -> dict[str, Any]:
    return {
        "site_id": report.site_id,
        "start_date": report.start_date,
        "end_date": report.end_date,
        "total": report.total,
        "days": [{"day": d.day, "reason": d.reason, "count": d.count} for d in report.days],
    }


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


class _SiteRoutes:
    def __init__(self, registry: SiteRegistry, max_body_bytes: int) -> None:
        self._registry = registry
        self._max_body_bytes = max_body_bytes

    async def create(self, request: Request) -> Reply:
        body = await json_body(request, self._max_body_bytes)
        fields = _text_fields(body, ("site_id", "name", "time_zone"), ("allowed_origins",))
        site = await self._registry.create(
            fields.get("site_id", ""),
            fields.get("name", ""),
            fields.get("time_zone", ""),
            _origins(body) or (),
        )
        return Reply(HTTPStatus.CREATED, site_to_json(site))

    async def list(self, request: Request) -> Reply:
        params, violations = query_parameters(request, ("page_size", "page_token"))
        size = params.get("page_size", "0")
        if not (size.isascii() and size.isdigit() and len(size) < 10):
            violations.append(FieldViolation("page_size", "must be an integer"))
        if violations:
            raise InvalidArgument(violations)
        page = await self._registry.list(int(size), params.get("page_token", ""))
        return Reply(
            HTTPStatus.OK,
            {
                "sites": [site_to_json(site) for site in page.sites],
                "next_page_token": page.next_page_token or None,
            },
        )

    async def get(self, request: Request) -> Reply:
        site = await self._registry.get(request.path_params["site_id"])
        return Reply(HTTPStatus.OK, site_to_json(site))

    async def update(self, request: Request) -> Reply:
        body = await json_body(request, self._max_body_bytes)
        fields = _text_fields(body, ("name", "time_zone"), ("allowed_origins",))
        changes = SiteChanges(
            name=fields.get("name"),
            time_zone=fields.get("time_zone"),
            allowed_origins=_origins(body),
        )
        site = await self._registry.update(request.path_params["site_id"], changes)
        return Reply(HTTPStatus.OK, site_to_json(site))


def site_to_json(site: Site) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "time_zone": site.time_zone,
        "created_at": site.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": site.updated_at.isoformat().replace("+00:00", "Z"),
        "allowed_origins": list(site.allowed_origins),
    }


def _text_fields(
    value: object, known: tuple[str, ...], others: tuple[str, ...] = ()
) -> dict[str, str]:
    """The string fields of a JSON object of those `known`; InvalidArgument names each field
    that is unknown or not a string, or one of `others` (read apart) that is not a list of
    strings."""
    if not isinstance(value, dict):
        raise InvalidArgument.single("body", "must be a JSON object")
    violations = [
        FieldViolation(key if is_short_text(key) else "body", "is not a known field")
        for key in value
        if key not in known and key not in others
    ]
    fields: dict[str, str] = {}
    for key in known:
        if key in value:
            if problem := not_text(value[key]):
                violations.append(FieldViolation(key, problem))
            else:
                fields[key] = value[key]
    for key in others:
        items = value.get(key, [])
        if not isinstance(items, list) or any(not_text(item) for item in items):
            violations.append(FieldViolation(key, "must be a list of strings"))
    if violations:
        raise InvalidArgument(violations)
    return fields


def _origins(body: dict[str, Any]) -> list[str] | None:
    """The body's allowed_origins (checked by _text_fields); None when not given."""
    origins: list[str] | None = body.get("allowed_origins")
    return origins
