"""analytics.v1.ReportService and analytics.v1.SiteService over gRPC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from analytics.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    site_pb2,
    site_pb2_grpc,
)

from core.errors import FieldViolation, InvalidArgument
from core.sites import Site
from report_server.access import ReportGate
from report_server.credentials import Created, Credential, CredentialRegistry
from report_server.filtered_traffic import FilteredTrafficQuery, FilteredTrafficReader
from report_server.live import LiveHub
from report_server.periods import Period
from report_server.reports import COUNT_NAMES, ReportReader, parse_breakdown, parse_metrics
from report_server.scope import Scope, parse_scope
from report_server.sites import UPDATABLE_FIELDS, SiteChanges, SiteRegistry
from report_server.stats import StatsQuery, StatsReader
from transports.credentials import grpc_secret
from transports.grpc_errors import Context, translate_errors, translate_stream_errors


class ReportServicer(report_pb2_grpc.ReportServiceServicer):
    def __init__(
        self,
        reader: StatsReader,
        reports: ReportReader,
        live: LiveHub,
        filtered: FilteredTrafficReader,
        gate: ReportGate,
    ) -> None:
        self._reader = reader
        self._reports = reports
        self._live = live
        self._filtered = filtered
        self._gate = gate

    def _read(self, context: Context, site_id: str) -> None:
        """Raise unless the call's credential may read the site's reports."""
        self._gate.read(grpc_secret(context), site_id)

    @translate_errors
    async def GetStats(
        self, request: report_pb2.GetStatsRequest, context: Context
    ) -> report_pb2.Stats:
        self._read(context, request.site_id)
        query = StatsQuery.parse(
            request.site_id,
            request.date,
            request.event_type,
            request.limit or None,
            start_date=request.start_date,
            end_date=request.end_date,
            timezone=request.timezone,
            range_keyword=request.range,
        )
        return await self._reader.get_stats(query)

    @translate_errors
    async def GetMetrics(
        self, request: report_pb2.MetricsRequest, context: Context
    ) -> report_pb2.Metrics:
        self._read(context, request.scope.site_id)
        scope = _scope(request.scope)
        visits_too = parse_metrics(request.metrics)
        result = await self._reports.metrics(scope, compare=request.compare, visits_too=visits_too)
        metrics = report_pb2.Metrics(
            site_id=request.scope.site_id,
            period=_period(result.period),
            views=report_pb2.Metric(value=result.current.views),
            visitors=report_pb2.Metric(value=result.current.visitors),
        )
        if result.previous_period is not None and result.previous is not None:
            metrics.previous_period.CopyFrom(_period(result.previous_period))
            metrics.views.previous = result.previous.views
            metrics.visitors.previous = result.previous.visitors
        if result.visits is not None:
            metrics.visits.value = result.visits.visits
            metrics.bounce_rate.value = result.visits.bounce_rate
            metrics.views_per_visit.value = result.visits.views_per_visit
            metrics.visit_duration.value = result.visits.visit_duration
        if result.previous_visits is not None:
            metrics.visits.previous = result.previous_visits.visits
            metrics.bounce_rate.previous = result.previous_visits.bounce_rate
            metrics.views_per_visit.previous = result.previous_visits.views_per_visit
            metrics.visit_duration.previous = result.previous_visits.visit_duration
        return metrics

    @translate_errors
    async def GetTimeSeries(
        self, request: report_pb2.TimeSeriesRequest, context: Context
    ) -> report_pb2.TimeSeries:
        self._read(context, request.scope.site_id)
        scope = _scope(request.scope)
        visits_too = parse_metrics(request.metrics, COUNT_NAMES)
        result = await self._reports.time_series(scope, request.interval, visits_too=visits_too)
        series = report_pb2.TimeSeries(
            site_id=request.scope.site_id, period=_period(result.period), interval=result.interval
        )
        for point in result.points:
            bucket = series.buckets.add(
                label=point.bucket.label,
                views=point.counts.views,
                visitors=point.counts.visitors,
                visits=point.visits,
            )
            bucket.start.FromDatetime(point.bucket.start)
        return series

    @translate_errors
    async def GetBreakdown(
        self, request: report_pb2.BreakdownRequest, context: Context
    ) -> report_pb2.Breakdown:
        self._read(context, request.scope.site_id)
        scope = _scope(request.scope)
        ask = parse_breakdown(
            request.dimension,
            request.order_by,
            request.limit,
            request.offset,
            metrics=request.metrics,
        )
        result = await self._reports.breakdown(scope, ask)
        return report_pb2.Breakdown(
            site_id=request.scope.site_id,
            period=_period(result.period),
            dimension=result.dimension,
            rows=[
                report_pb2.BreakdownRow(
                    value=row.value, views=row.views, visitors=row.visitors, visits=row.visits
                )
                for row in result.rows
            ],
            total_rows=result.total_rows,
        )

    @translate_stream_errors
    async def WatchLive(
        self, request: report_pb2.WatchLiveRequest, context: Context
    ) -> AsyncIterator[report_pb2.LiveUpdate]:
        self._read(context, request.site_id)
        async for update in self._live.watch(request.site_id):
            message = report_pb2.LiveUpdate(visitors=update.visitors)
            if update.event is not None:
                message.event.event_type = update.event.event_type
                message.event.path = update.event.path
                message.event.timestamp.FromDatetime(update.event.timestamp)
            yield message

    @translate_stream_errors
    async def ExportEvents(
        self, request: report_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[report_pb2.ExportedEvent]:
        self._read(context, request.scope.site_id)
        _, events = await self._reports.export(_scope(request.scope))
        async for event in events:
            message = report_pb2.ExportedEvent(
                event_id=event.event_id,
                site_id=event.site_id,
                event_type=event.event_type,
                path=event.path,
                user_id=event.user_id or "",
                referrer=event.referrer or "",
                properties=json.loads(event.properties),
            )
            message.timestamp.FromDatetime(event.timestamp)
            message.received_at.FromDatetime(event.received_at)
            yield message

    @translate_errors
    async def GetFilteredTraffic(
        self, request: report_pb2.GetFilteredTrafficRequest, context: Context
    ) -> report_pb2.FilteredTraffic:
        self._read(context, request.site_id)
        query = FilteredTrafficQuery.parse(request.site_id, request.start_date, request.end_date)
        return await self._filtered.get(query)


def _scope(scope: report_pb2.Scope) -> Scope:
    return parse_scope(
        scope.site_id,
        range_keyword=scope.range,
        start_date=scope.start_date,
        end_date=scope.end_date,
        timezone=scope.timezone,
        filters=[(f.dimension, f.operator, list(f.values)) for f in scope.filters],
        prefix="scope.",
    )


def _period(period: Period) -> report_pb2.Period:
    message = report_pb2.Period(
        start_date=period.first.isoformat(),
        end_date=period.last.isoformat(),
        timezone=period.zone.key,
    )
    message.start.FromDatetime(period.start)
    message.end.FromDatetime(period.end)
    return message


class SiteServicer(site_pb2_grpc.SiteServiceServicer):
    """Every call takes the admin token."""

    def __init__(self, registry: SiteRegistry, gate: ReportGate) -> None:
        self._registry = registry
        self._gate = gate

    @translate_errors
    async def CreateSite(
        self, request: site_pb2.CreateSiteRequest, context: Context
    ) -> site_pb2.Site:
        self._gate.admin(grpc_secret(context))
        site = await self._registry.create(
            request.site_id,
            request.name,
            request.time_zone,
            request.allowed_origins,
            ingest_policy=request.ingest_policy,
            report_visibility=request.report_visibility,
        )
        return site_message(site)

    @translate_errors
    async def GetSite(self, request: site_pb2.GetSiteRequest, context: Context) -> site_pb2.Site:
        self._gate.admin(grpc_secret(context))
        return site_message(await self._registry.get(request.site_id))

    @translate_errors
    async def ListSites(
        self, request: site_pb2.ListSitesRequest, context: Context
    ) -> site_pb2.ListSitesResponse:
        self._gate.admin(grpc_secret(context))
        page = await self._registry.list(request.page_size, request.page_token)
        return site_pb2.ListSitesResponse(
            sites=[site_message(site) for site in page.sites],
            next_page_token=page.next_page_token,
        )

    @translate_errors
    async def UpdateSite(
        self, request: site_pb2.UpdateSiteRequest, context: Context
    ) -> site_pb2.Site:
        self._gate.admin(grpc_secret(context))
        given = request.site
        paths = list(request.update_mask.paths)
        if unknown := [path for path in paths if path not in UPDATABLE_FIELDS]:
            raise InvalidArgument(
                [
                    FieldViolation("update_mask", f"{path!r} is not a field to update")
                    for path in unknown
                ]
            )
        if not paths:
            paths = [name for name in UPDATABLE_FIELDS if getattr(given, name)]
        changes = SiteChanges(
            name=given.name if "name" in paths else None,
            time_zone=given.time_zone if "time_zone" in paths else None,
            allowed_origins=list(given.allowed_origins) if "allowed_origins" in paths else None,
            ingest_policy=given.ingest_policy if "ingest_policy" in paths else None,
            report_visibility=given.report_visibility if "report_visibility" in paths else None,
        )
        return site_message(await self._registry.update(given.site_id, changes))


def site_message(site: Site) -> site_pb2.Site:
    message = site_pb2.Site(
        site_id=site.site_id,
        name=site.name,
        time_zone=site.time_zone,
        allowed_origins=site.allowed_origins,
        ingest_policy=site.ingest_policy,
        report_visibility=site.report_visibility,
    )
    message.created_at.FromDatetime(site.created_at)
    message.updated_at.FromDatetime(site.updated_at)
    return message


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Keys and tokens; every call takes the admin token."""

    def __init__(self, credentials: CredentialRegistry, gate: ReportGate) -> None:
        self._credentials = credentials
        self._gate = gate

    @translate_errors
    async def CreateCredential(
        self, request: admin_pb2.CreateCredentialRequest, context: Context
    ) -> admin_pb2.CreatedCredential:
        self._gate.admin(grpc_secret(context))
        created = await self._credentials.create(
            request.kind, request.name, request.site_ids, request.all_sites
        )
        return created_message(created)

    @translate_errors
    async def ListCredentials(
        self, request: admin_pb2.ListCredentialsRequest, context: Context
    ) -> admin_pb2.ListCredentialsResponse:
        self._gate.admin(grpc_secret(context))
        listed = await self._credentials.list(request.kind)
        return admin_pb2.ListCredentialsResponse(
            credentials=[credential_message(each) for each in listed]
        )

    @translate_errors
    async def RevokeCredential(
        self, request: admin_pb2.RevokeCredentialRequest, context: Context
    ) -> admin_pb2.Credential:
        self._gate.admin(grpc_secret(context))
        return credential_message(await self._credentials.revoke(request.credential_id))

    @translate_errors
    async def RotateCredential(
        self, request: admin_pb2.RotateCredentialRequest, context: Context
    ) -> admin_pb2.CreatedCredential:
        self._gate.admin(grpc_secret(context))
        return created_message(await self._credentials.rotate(request.credential_id))


def credential_message(credential: Credential) -> admin_pb2.Credential:
    message = admin_pb2.Credential(
        credential_id=credential.credential_id,
        kind=credential.kind,
        name=credential.name,
        site_ids=credential.site_ids,
        all_sites=credential.all_sites,
        replaces=credential.replaces,
    )
    message.created_at.FromDatetime(credential.created_at)
    if credential.revoked_at is not None:
        message.revoked_at.FromDatetime(credential.revoked_at)
    return message


def created_message(created: Created) -> admin_pb2.CreatedCredential:
    return admin_pb2.CreatedCredential(
        credential=credential_message(created.credential), secret=created.secret
    )
