"""The report service's HTTP door: `GET /stats` (the seeds' shape), the reports, the site
registry (`/sites`, `/sites/{site_id}`), `GET /filtered-traffic` and the keys and tokens
(`/admin/credentials`).

Every route checks the request's credential (report_server.access) before it reads anything:
a report route the site's read access, the others the admin token.

It reads query strings and JSON bodies into the arguments the gRPC door passes, and calls the
same StatsReader and SiteRegistry; it holds no rule of its own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from http import HTTPStatus
from typing import Any

from analytics.v1.report_pb2 import FilteredTraffic, Stats

from core.errors import FieldViolation, InvalidArgument, ResourceExhausted
from core.sites import Site
from report_server.access import ReportGate
from report_server.credentials import Created, Credential, CredentialRegistry
from report_server.filtered_traffic import FilteredTrafficQuery, FilteredTrafficReader
from report_server.live import LiveHub, LiveUpdate
from report_server.periods import Period
from report_server.reports import (
    COUNT_NAMES,
    METRIC_NAMES,
    ExportedEvent,
    ReportReader,
    parse_breakdown,
    wants_visits,
)
from report_server.scope import Scope, parse_scope
from report_server.sites import SiteChanges, SiteRegistry
from report_server.stats import MAX_LIMIT, StatsQuery, StatsReader
from transports.credentials import http_secret
from transports.http_app import Reply, Request, Routes, json_body, query_parameters
from transports.http_json import (
    encodes_as_utf8,
    error_to_json,
    is_short_text,
    not_text,
    parse_body,
)

STATS_PARAMETERS = (
    "site_id",
    "date",
    "start_date",
    "end_date",
    "event_type",
    "limit",
    "timezone",
    "range",
)


def routes(
    *,
    reader: StatsReader,
    reports: ReportReader,
    live: LiveHub,
    registry: SiteRegistry,
    max_body_bytes: int,
    filtered: FilteredTrafficReader,
    gate: ReportGate,
    credentials: CredentialRegistry,
) -> Routes:
    sites = _SiteRoutes(registry, max_body_bytes, gate)
    report = _ReportRoutes(reports, live, gate)
    admin = _AdminRoutes(credentials, max_body_bytes, gate)
    return {
        "/stats": {"GET": _StatsRoutes(reader, gate).get_stats},
        "/reports/metrics": {"GET": report.metrics},
        "/reports/timeseries": {"GET": report.time_series},
        "/reports/breakdown": {"GET": report.breakdown},
        "/reports/live": {"GET": report.live},
        "/reports/export": {"GET": report.export},
        "/sites": {"GET": sites.list, "POST": sites.create},
        "/sites/{site_id}": {"GET": sites.get, "PATCH": sites.update},
        "/filtered-traffic": {"GET": _FilteredTrafficRoutes(filtered, gate).get},
        "/admin/credentials": {"GET": admin.list, "POST": admin.create},
        "/admin/credentials/{credential_id}/revoke": {"POST": admin.revoke},
        "/admin/credentials/{credential_id}/rotate": {"POST": admin.rotate},
    }


def _read(gate: ReportGate, request: Request, params: dict[str, str]) -> None:
    """Raise unless the request may read the reports of the site its parameters name."""
    gate.read(http_secret(request.headers), params.get("site_id", ""))


class _FilteredTrafficRoutes:
    def __init__(self, reader: FilteredTrafficReader, gate: ReportGate) -> None:
        self._reader = reader
        self._gate = gate

    async def get(self, request: Request) -> Reply:
        params, violations = query_parameters(request, ("site_id", "start_date", "end_date"))
        _read(self._gate, request, params)
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
    def __init__(self, reader: StatsReader, gate: ReportGate) -> None:
        self._reader = reader
        self._gate = gate

    async def get_stats(self, request: Request) -> Reply:
        params, violations = query_parameters(request, STATS_PARAMETERS)
        _read(self._gate, request, params)
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
            timezone=params.get("timezone", ""),
            range_keyword=params.get("range", ""),
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


# Seconds between the comments that keep an idle Server-Sent Events connection open.
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
EXPORT_CHUNK_LINES = 500
EXPORT_COLUMNS = (
    "event_id",
    "site_id",
    "event_type",
    "path",
    "user_id",
    "timestamp",
    "referrer",
    "properties",
    "received_at",
)


def _sse(data: object) -> bytes:
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def _live_json(update: LiveUpdate) -> dict[str, Any]:
    event = update.event
    return {
        "event": None
        if event is None
        else {
            "event_type": event.event_type,
            "path": event.path,
            "timestamp": _instant(event.timestamp),
        },
        "visitors": update.visitors,
    }


def _export_values(event: ExportedEvent) -> list[Any]:
    return [
        event.event_id,
        event.site_id,
        event.event_type,
        event.path,
        event.user_id,
        _instant(event.timestamp),
        event.referrer,
        event.properties,
        _instant(event.received_at),
    ]


async def _ndjson(events: AsyncIterator[ExportedEvent]) -> AsyncIterator[str]:
    async for event in events:
        record = dict(zip(EXPORT_COLUMNS, _export_values(event), strict=True))
        record["properties"] = json.loads(event.properties)
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


async def _csv(events: AsyncIterator[ExportedEvent]) -> AsyncIterator[str]:
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    async for event in events:
        writer.writerow(_export_values(event))
        yield line.getvalue()
        line.seek(0)
        line.truncate()
    if line.getvalue():  # the header row of an empty export
        yield line.getvalue()


EXPORT_FORMATS = {
    "ndjson": (b"application/x-ndjson", _ndjson),
    "csv": (b"text/csv; charset=utf-8", _csv),
}

# The visit metrics, named as in the answer and as VisitCounts' attributes.
VISIT_METRICS = ("visits", "bounce_rate", "views_per_visit", "visit_duration")
SCOPE_PARAMETERS = ("site_id", "range", "start_date", "end_date", "timezone", "filters")


class _ReportRoutes:
    def __init__(self, reports: ReportReader, live: LiveHub, gate: ReportGate) -> None:
        self._reports = reports
        self._live = live
        self._gate = gate

    async def live(self, request: Request) -> Reply:
        """Server-Sent Events: one `data:` line of JSON per update, a comment every
        KEEPALIVE_SECONDS when nothing happens (so proxies keep the connection), and an
        `event: dropped` when the watcher fell behind."""
        params, violations = query_parameters(request, ("site_id",))
        _read(self._gate, request, params)
        if violations:
            raise InvalidArgument(violations)
        updates = self._live.watch(params.get("site_id", ""))
        first = await anext(updates)  # a bad site_id is refused here, as a 400

        async def events() -> AsyncGenerator[bytes, None]:
            yield _sse(_live_json(first))
            pending = asyncio.ensure_future(anext(updates))
            try:
                while True:
                    done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
                    if not done:
                        yield b": keep-alive\n\n"
                        continue
                    try:
                        update = pending.result()
                    except ResourceExhausted as error:
                        yield b"event: dropped\n" + _sse(error_to_json(error))
                        return
                    yield _sse(_live_json(update))
                    pending = asyncio.ensure_future(anext(updates))
            finally:
                pending.cancel()
                await updates.aclose()

        return Reply(HTTPStatus.OK, None, SSE_HEADERS, events())

    async def export(self, request: Request) -> Reply:
        """The events as NDJSON (one JSON object per line) or CSV, streamed as they are read."""
        params, scope = _scope(request, ("format",), self._gate)
        form = params.get("format", "ndjson")
        if form not in EXPORT_FORMATS:
            raise InvalidArgument.single("format", "must be ndjson or csv")
        _, events = await self._reports.export(scope)
        media_type, lines = EXPORT_FORMATS[form]

        async def body() -> AsyncGenerator[bytes, None]:
            chunk: list[str] = []
            async for line in lines(events):
                chunk.append(line)
                if len(chunk) == EXPORT_CHUNK_LINES:
                    yield "".join(chunk).encode()
                    chunk.clear()
            if chunk:
                yield "".join(chunk).encode()

        return Reply(HTTPStatus.OK, None, ((b"content-type", media_type),), body())

    async def metrics(self, request: Request) -> Reply:
        params, scope, violations = _scope_or_violations(
            request, ("compare", "metrics"), self._gate
        )
        visits_too = wants_visits(_names(params, "metrics"), METRIC_NAMES, violations)
        if violations:
            raise InvalidArgument(violations)
        assert scope is not None
        compare = _flag(params, "compare")
        result = await self._reports.metrics(scope, compare=compare, visits_too=visits_too)
        body: dict[str, Any] = {
            "site_id": scope.site_id,
            "period": _period_json(result.period),
            "views": {"value": result.current.views},
            "visitors": {"value": result.current.visitors},
        }
        if result.previous_period is not None and result.previous is not None:
            body["previous_period"] = _period_json(result.previous_period)
            body["views"]["previous"] = result.previous.views
            body["visitors"]["previous"] = result.previous.visitors
        for name in VISIT_METRICS:
            if result.visits is not None:
                body[name] = {"value": getattr(result.visits, name)}
            if result.previous_visits is not None:
                body[name]["previous"] = getattr(result.previous_visits, name)
        return Reply(HTTPStatus.OK, body)

    async def time_series(self, request: Request) -> Reply:
        params, scope, violations = _scope_or_violations(
            request, ("interval", "metrics"), self._gate
        )
        visits_too = wants_visits(_names(params, "metrics"), COUNT_NAMES, violations)
        if violations:
            raise InvalidArgument(violations)
        assert scope is not None
        result = await self._reports.time_series(
            scope, params.get("interval", ""), visits_too=visits_too
        )
        return Reply(
            HTTPStatus.OK,
            {
                "site_id": scope.site_id,
                "period": _period_json(result.period),
                "interval": result.interval,
                "buckets": [
                    {
                        "label": point.bucket.label,
                        "start": _instant(point.bucket.start),
                        "views": point.counts.views,
                        "visitors": point.counts.visitors,
                    }
                    | ({} if point.visits is None else {"visits": point.visits})
                    for point in result.points
                ],
            },
        )

    async def breakdown(self, request: Request) -> Reply:
        params, scope, violations = _scope_or_violations(
            request, ("dimension", "order_by", "limit", "offset", "metrics"), self._gate
        )
        limit = _number(params, "limit", violations)
        offset = _number(params, "offset", violations)
        try:
            ask = parse_breakdown(
                params.get("dimension", ""),
                params.get("order_by", ""),
                limit,
                offset or 0,
                metrics=_names(params, "metrics"),
            )
        except InvalidArgument as error:
            violations += error.violations
        if violations:
            raise InvalidArgument(violations)
        assert scope is not None
        result = await self._reports.breakdown(scope, ask)
        return Reply(
            HTTPStatus.OK,
            {
                "site_id": scope.site_id,
                "period": _period_json(result.period),
                "dimension": result.dimension,
                "rows": [
                    {"value": row.value, "views": row.views, "visitors": row.visitors}
                    | ({} if row.visits is None else {"visits": row.visits})
                    for row in result.rows
                ],
                "total_rows": result.total_rows,
            },
        )


def _scope(
    request: Request, own: tuple[str, ...], gate: ReportGate
) -> tuple[dict[str, str], Scope]:
    """The query string's parameters, and the Scope of those that make one; InvalidArgument
    names every bad parameter (once the request's access to the site is checked)."""
    params, scope, violations = _scope_or_violations(request, own, gate)
    if violations:
        raise InvalidArgument(violations)
    assert scope is not None
    return params, scope


def _scope_or_violations(
    request: Request, own: tuple[str, ...], gate: ReportGate
) -> tuple[dict[str, str], Scope | None, list[FieldViolation]]:
    """The query string's parameters, the Scope of those that make one (None if bad), and
    every violation found so far, for the caller to add its own to; raises first unless the
    request may read the site's reports."""
    params, violations = query_parameters(request, (*SCOPE_PARAMETERS, *own))
    _read(gate, request, params)
    filters = _filters(params.get("filters"), violations)
    scope = None
    try:
        scope = parse_scope(
            params.get("site_id", ""),
            range_keyword=params.get("range", ""),
            start_date=params.get("start_date", ""),
            end_date=params.get("end_date", ""),
            timezone=params.get("timezone", ""),
            filters=filters,
        )
    except InvalidArgument as error:
        violations += error.violations
    return params, scope, violations


FILTERS_FORMAT = (
    'must be a JSON array of {"dimension": ..., "operator": "is" or "prefix", '
    '"values": [...]} objects'
)


def _filters(
    text: str | None, violations: list[FieldViolation]
) -> list[tuple[str, str, list[str]]]:
    """The `filters` parameter: JSON, as the gRPC Filter messages' JSON mapping spells them."""
    if text is None:
        return []
    try:
        value = parse_body(text.encode())
    except InvalidArgument:
        value = None
    filters = []
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict) or not set(item) <= {"dimension", "operator", "values"}:
                break
            dimension, operator, values = (
                item.get("dimension", ""),
                item.get("operator", ""),
                item.get("values", []),
            )
            if not (
                isinstance(dimension, str)
                and isinstance(operator, str)
                and isinstance(values, list)
                and all(isinstance(v, str) and encodes_as_utf8(v) for v in values)
            ):
                break
            filters.append((dimension, operator, values))
        else:
            return filters
    violations.append(FieldViolation("filters", FILTERS_FORMAT))
    return []


def _flag(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidArgument.single(name, "must be true or false")
    return value == "true"


def _names(params: dict[str, str], name: str) -> list[str]:
    """A comma-separated list ("views,visits"); absent or empty: none."""
    text = params.get(name, "")
    return text.split(",") if text else []


def _number(params: dict[str, str], name: str, violations: list[FieldViolation]) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        violations.append(FieldViolation(name, "must be a whole number"))
        return None
    return int(text)


def _period_json(period: Period) -> dict[str, str]:
    return {
        "start_date": period.first.isoformat(),
        "end_date": period.last.isoformat(),
        "timezone": period.zone.key,
        "start": _instant(period.start),
        "end": _instant(period.end),
    }


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _SiteRoutes:
    """Every route takes the admin token."""

    def __init__(self, registry: SiteRegistry, max_body_bytes: int, gate: ReportGate) -> None:
        self._registry = registry
        self._max_body_bytes = max_body_bytes
        self._gate = gate

    async def create(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        body = await json_body(request, self._max_body_bytes)
        fields = _text_fields(body, _SITE_FIELDS, ("allowed_origins",))
        site = await self._registry.create(
            fields.get("site_id", ""),
            fields.get("name", ""),
            fields.get("time_zone", ""),
            _origins(body) or (),
            ingest_policy=fields.get("ingest_policy", ""),
            report_visibility=fields.get("report_visibility", ""),
        )
        return Reply(HTTPStatus.CREATED, site_to_json(site))

    async def list(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
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
        self._gate.admin(http_secret(request.headers))
        site = await self._registry.get(request.path_params["site_id"])
        return Reply(HTTPStatus.OK, site_to_json(site))

    async def update(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        body = await json_body(request, self._max_body_bytes)
        fields = _text_fields(body, _SITE_FIELDS[1:], ("allowed_origins",))
        changes = SiteChanges(
            name=fields.get("name"),
            time_zone=fields.get("time_zone"),
            allowed_origins=_origins(body),
            ingest_policy=fields.get("ingest_policy"),
            report_visibility=fields.get("report_visibility"),
        )
        site = await self._registry.update(request.path_params["site_id"], changes)
        return Reply(HTTPStatus.OK, site_to_json(site))


def site_to_json(site: Site) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "time_zone": site.time_zone,
        "created_at": _instant(site.created_at),
        "updated_at": _instant(site.updated_at),
        "allowed_origins": list(site.allowed_origins),
        "ingest_policy": site.ingest_policy,
        "report_visibility": site.report_visibility,
    }


_SITE_FIELDS = ("site_id", "name", "time_zone", "ingest_policy", "report_visibility")


def _text_fields(
    value: object,
    known: tuple[str, ...],
    others: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> dict[str, str]:
    """The string fields of a JSON object of those `known`; InvalidArgument names each field
    that is unknown or not a string, one of `others` (read apart) that is not a list of
    strings, or one of `flags` that is not true or false."""
    if not isinstance(value, dict):
        raise InvalidArgument.single("body", "must be a JSON object")
    violations = [
        FieldViolation(key if is_short_text(key) else "body", "is not a known field")
        for key in value
        if key not in known and key not in others and key not in flags
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
    violations += [
        FieldViolation(key, "must be true or false")
        for key in flags
        if not isinstance(value.get(key, False), bool)
    ]
    if violations:
        raise InvalidArgument(violations)
    return fields


def _origins(body: dict[str, Any]) -> list[str] | None:
    """The body's allowed_origins (checked by _text_fields); None when not given."""
    origins: list[str] | None = body.get("allowed_origins")
    return origins


class _AdminRoutes:
    """Keys and tokens; every route takes the admin token."""

    def __init__(
        self, credentials: CredentialRegistry, max_body_bytes: int, gate: ReportGate
    ) -> None:
        self._credentials = credentials
        self._max_body_bytes = max_body_bytes
        self._gate = gate

    async def create(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        body = await json_body(request, self._max_body_bytes)
        fields = _text_fields(body, ("kind", "name"), ("site_ids",), ("all_sites",))
        created = await self._credentials.create(
            fields.get("kind", ""),
            fields.get("name", ""),
            body.get("site_ids", []),
            body.get("all_sites", False),
        )
        return Reply(HTTPStatus.CREATED, created_to_json(created))

    async def list(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        params, violations = query_parameters(request, ("kind",))
        if violations:
            raise InvalidArgument(violations)
        listed = await self._credentials.list(params.get("kind", ""))
        return Reply(HTTPStatus.OK, {"credentials": [credential_to_json(c) for c in listed]})

    async def revoke(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        revoked = await self._credentials.revoke(request.path_params["credential_id"])
        return Reply(HTTPStatus.OK, credential_to_json(revoked))

    async def rotate(self, request: Request) -> Reply:
        self._gate.admin(http_secret(request.headers))
        created = await self._credentials.rotate(request.path_params["credential_id"])
        return Reply(HTTPStatus.CREATED, created_to_json(created))


def credential_to_json(credential: Credential) -> dict[str, Any]:
    return {
        "credential_id": credential.credential_id,
        "kind": credential.kind,
        "name": credential.name,
        "site_ids": list(credential.site_ids),
        "all_sites": credential.all_sites,
        "created_at": _instant(credential.created_at),
        "revoked_at": None if credential.revoked_at is None else _instant(credential.revoked_at),
        "replaces": credential.replaces or None,
    }


def created_to_json(created: Created) -> dict[str, Any]:
    return {"credential": credential_to_json(created.credential), "secret": created.secret}
