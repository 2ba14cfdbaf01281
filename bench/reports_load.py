"""The report figures: metrics, time series and breakdowns of the stored histories (see
bench/stats_load.py), asked over gRPC of a report server reading each, p50 and p99.

Each is asked of a site in its own time zone, which is not UTC: the busiest site of the
history (in America/New_York) and a typical one (the 100th by traffic). Series, breakdowns and
all time count page views, as a dashboard's charts and tables do. The figures of views and
visitors ask for those alone (`metrics`); the visit figures for the visits, which are computed
from the events of the range each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from analytics.v1 import report_pb2

from bench.stats_load import Call, grpc_latencies_ms
from core.settings import Address

MONTH_DAYS = 30
YEAR_DAYS = 365


@dataclass(frozen=True)
class ReportFigure:
    name: str
    p50_target_ms: float
    p99_target_ms: float
    # The call asking it of a site whose history ends on a day.
    make: Callable[[str, date], Call]
    # Whether it asks for the whole stored history rather than days ending on the last one.
    whole_history: bool = False


PAGE_VIEWS = report_pb2.Filter(dimension="event_type", values=["page_view"])
VIEWS_AND_VISITORS = ["views", "visitors"]


def _scope(site: str, days: int, last: date, *filters: report_pb2.Filter) -> report_pb2.Scope:
    first = last - timedelta(days=days - 1)
    return report_pb2.Scope(
        site_id=site, start_date=first.isoformat(), end_date=last.isoformat(), filters=filters
    )


def _series(days: int) -> Callable[[str, date], Call]:
    def make(site: str, last: date) -> Call:
        request = report_pb2.TimeSeriesRequest(
            scope=_scope(site, days, last, PAGE_VIEWS), interval="day", metrics=VIEWS_AND_VISITORS
        )
        return lambda stub: stub.GetTimeSeries(request)

    return make


def _breakdown(site: str, last: date) -> Call:
    request = report_pb2.BreakdownRequest(
        scope=_scope(site, MONTH_DAYS, last, PAGE_VIEWS),
        dimension="path",
        metrics=VIEWS_AND_VISITORS,
    )
    return lambda stub: stub.GetBreakdown(request)


def _filtered_total(site: str, last: date) -> Call:
    blog = report_pb2.Filter(dimension="path", operator="prefix", values=["/blog/"])
    request = report_pb2.MetricsRequest(
        scope=_scope(site, MONTH_DAYS, last, blog), metrics=VIEWS_AND_VISITORS
    )
    return lambda stub: stub.GetMetrics(request)


def _all_time(site: str, last: date) -> Call:
    request = report_pb2.MetricsRequest(
        scope=report_pb2.Scope(site_id=site, range="all", filters=[PAGE_VIEWS]),
        metrics=VIEWS_AND_VISITORS,
    )
    return lambda stub: stub.GetMetrics(request)


def _visits(site: str, last: date) -> Call:
    """Every metric a dashboard's tiles show: views, visitors, visits, bounce rate, views per
    visit and visit duration."""
    request = report_pb2.MetricsRequest(scope=_scope(site, MONTH_DAYS, last))
    return lambda stub: stub.GetMetrics(request)


def _entry_pages(site: str, last: date) -> Call:
    request = report_pb2.BreakdownRequest(
        scope=_scope(site, MONTH_DAYS, last), dimension="entry_page", order_by="visits"
    )
    return lambda stub: stub.GetBreakdown(request)


FIGURES = (
    ReportFigure(f"{MONTH_DAYS}-day series by day", 15, 50, _series(MONTH_DAYS)),
    ReportFigure(f"{MONTH_DAYS}-day breakdown by path", 15, 50, _breakdown),
    ReportFigure(f"{MONTH_DAYS}-day total filtered by path prefix", 15, 50, _filtered_total),
    ReportFigure(f"{YEAR_DAYS}-day series by day", 50, 50, _series(YEAR_DAYS)),
    ReportFigure("all time, views and visitors", 50, 50, _all_time, whole_history=True),
    ReportFigure(f"{MONTH_DAYS}-day metrics with visits", 15, 50, _visits),
    ReportFigure(f"{MONTH_DAYS}-day breakdown by entry page", 15, 50, _entry_pages),
)


def report_latencies_ms(
    targets: Sequence[Address], figure: ReportFigure, site: str, last: date, seconds: float
) -> list[list[float]]:
    """The figure's latencies against each target, calls alternating between them."""
    return asyncio.run(grpc_latencies_ms(targets, figure.make(site, last), seconds))
