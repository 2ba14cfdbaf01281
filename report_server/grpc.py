"""analytics.v1.ReportService and analytics.v1.SiteService over gRPC."""

from __future__ import annotations

from analytics.v1 import report_pb2, report_pb2_grpc, site_pb2, site_pb2_grpc

from core.errors import FieldViolation, InvalidArgument
from core.sites import Site
from report_server.filtered_traffic import FilteredTrafficQuery, FilteredTrafficReader
from report_server.sites import UPDATABLE_FIELDS, SiteChanges, SiteRegistry
from report_server.stats import StatsQuery, StatsReader
from transports.grpc_errors import Context, translate_errors


class ReportServicer(report_pb2_grpc.ReportServiceServicer):
    def __init__(self, reader: StatsReader, filtered: FilteredTrafficReader) -> None:
        self._reader = reader
        self._filtered = filtered

    @translate_errors
    async def GetStats(
        self, request: report_pb2.GetStatsRequest, context: Context
    ) -> report_pb2.Stats:
        query = StatsQuery.parse(
            request.site_id,
            request.date,
            request.event_type,
            request.limit or None,
            start_date=request.start_date,
            end_date=request.end_date,
        )
        return await self._reader.get_stats(query)

    @translate_errors
    async def GetFilteredTraffic(
        self, request: report_pb2.GetFilteredTrafficRequest, context: Context
    ) -> report_pb2.FilteredTraffic:
        query = FilteredTrafficQuery.parse(request.site_id, request.start_date, request.end_date)
        return await self._filtered.get(query)


class SiteServicer(site_pb2_grpc.SiteServiceServicer):
    def __init__(self, registry: SiteRegistry) -> None:
        self._registry = registry

    @translate_errors
    async def CreateSite(
        self, request: site_pb2.CreateSiteRequest, context: Context
    ) -> site_pb2.Site:
        site = await self._registry.create(
            request.site_id, request.name, request.time_zone, request.allowed_origins
        )
        return site_message(site)

    @translate_errors
    async def GetSite(self, request: site_pb2.GetSiteRequest, context: Context) -> site_pb2.Site:
        return site_message(await self._registry.get(request.site_id))

    @translate_errors
    async def ListSites(
        self, request: site_pb2.ListSitesRequest, context: Context
    ) -> site_pb2.ListSitesResponse:
        page = await self._registry.list(request.page_size, request.page_token)
        return site_pb2.ListSitesResponse(
            sites=[site_message(site) for site in page.sites],
            next_page_token=page.next_page_token,
        )

    @translate_errors
    async def UpdateSite(
        self, request: site_pb2.UpdateSiteRequest, context: Context
    ) -> site_pb2.Site:
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
        )
        return site_message(await self._registry.update(given.site_id, changes))


def site_message(site: Site) -> site_pb2.Site:
    message = site_pb2.Site(
        site_id=site.site_id,
        name=site.name,
        time_zone=site.time_zone,
        allowed_origins=site.allowed_origins,
    )
    message.created_at.FromDatetime(site.created_at)
    message.updated_at.FromDatetime(site.updated_at)
    return message
