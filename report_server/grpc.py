"""analytics.v1.ReportService over gRPC."""

from __future__ import annotations

from analytics.v1 import report_pb2, report_pb2_grpc

from report_server.stats import StatsQuery, StatsReader
from transports.grpc_errors import Context, translate_errors


class ReportServicer(report_pb2_grpc.ReportServiceServicer):
    def __init__(self, reader: StatsReader) -> None:
        self._reader = reader

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
