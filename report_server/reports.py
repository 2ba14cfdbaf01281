"""The reports as both doors see them: metrics, time series and breakdowns of a checked Scope,
counted from the events in [start, end) of the period in its time zone.

The period's days, and a series' buckets, are instants computed here from the tz database
(report_server.periods); PostgreSQL counts the events between them. So every zone is exact,
whatever its offset.

Metrics and series by days, weeks or months in the site's own zone, filtered at most by event
type, are read from the daily aggregates instead (kept by the site's days, the same numbers),
which cost the same whatever the days' events: long ranges of busy sites stay fast.

Visits (a visitor's events with no gap over 30 minutes) are computed from the events each time
(report_queries.VISITS): a visit counts in the period and bucket of its first event, and is
described as it stands at the period's end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import asyncpg

from core.errors import FieldViolation, InvalidArgument
from report_server.database import ReportDatabase
from report_server.periods import (
    INTERVALS,
    MAX_BUCKETS,
    MAX_DAYS,
    Bucket,
    Period,
    bucket_count,
    buckets,
    resolve,
)
from report_server.report_queries import (
    AGGREGATE_ALL_TIME,
    AGGREGATE_DAYS,
    AGGREGATE_SERIES,
    BREAKDOWN,
    DIMENSION_VALUES,
    EXPORT,
    FILTER_CONDITIONS,
    METRICS,
    SITE_FACTS,
    TIME_SERIES,
    VISIT_BREAKDOWN,
    VISIT_FILTERED_METRICS,
    VISIT_FILTERED_SERIES,
    VISIT_METRICS,
    VISIT_SERIES,
    VISIT_VALUES,
    events_where,
    property_value,
    visits_sql,
)
from report_server.scope import PROPERTY_PREFIX, Filter, Scope, dimension_violations

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
ORDERS = ("visitors", "views", "visits")
# What a report may be asked to count. Views and visitors are always counted (from the
# aggregates, or one pass over the events); the visit metrics only when asked (the default),
# since they read and sort every event of the range.
METRIC_NAMES = ("views", "visitors", "visits", "bounce_rate", "views_per_visit", "visit_duration")
COUNT_NAMES = ("views", "visitors", "visits")  # a series' and a breakdown's
# The parameters every report's statement starts with: site_id, start, end.
LEADING = 3


@dataclass(frozen=True)
class Counts:
    views: int
    visitors: int


@dataclass(frozen=True)
class VisitCounts:
    """The visits of a period, and what the visit metrics are computed from."""

    visits: int
    bounces: int  # visits of exactly one page view
    pages: int  # their page views
    duration_us: int  # the microseconds from each one's first event to its last, summed

    @property
    def bounce_rate(self) -> float:
        """The percentage of visits that bounced; 0 without visits."""
        return 100 * self.bounces / self.visits if self.visits else 0.0

    @property
    def views_per_visit(self) -> float:
        return self.pages / self.visits if self.visits else 0.0

    @property
    def visit_duration(self) -> float:
        """The mean duration of a visit, in seconds."""
        return self.duration_us / (self.visits * 1_000_000) if self.visits else 0.0


@dataclass(frozen=True)
class MetricsResult:
    period: Period
    current: Counts
    previous_period: Period | None  # asked to compare
    previous: Counts | None
    visits: VisitCounts | None  # asked for
    previous_visits: VisitCounts | None  # asked for, and to compare


@dataclass(frozen=True)
class SeriesPoint:
    bucket: Bucket
    counts: Counts
    visits: int | None  # that start in the bucket; None: not asked for


@dataclass(frozen=True)
class SeriesResult:
    period: Period
    interval: str
    points: list[SeriesPoint]


@dataclass(frozen=True)
class BreakdownRow:
    value: str
    views: int
    visitors: int
    visits: int | None  # that start in the period and hold one of the row's events; None:
    # not asked for


@dataclass(frozen=True)
class BreakdownResult:
    period: Period
    dimension: str
    rows: list[BreakdownRow]
    total_rows: int


@dataclass(frozen=True)
class ExportedEvent:
    event_id: str
    site_id: str
    event_type: str
    path: str
    user_id: str | None
    timestamp: datetime
    referrer: str | None
    properties: str  # JSON
    received_at: datetime


@dataclass(frozen=True)
class BreakdownAsk:
    dimension: str
    order_by: str
    limit: int
    offset: int
    visits: bool = True  # count each row's visits


def wants_visits(
    metrics: Sequence[str], names: tuple[str, ...], violations: list[FieldViolation]
) -> bool:
    """Whether a report's `metrics` (none: all) ask for a visit metric; an unknown name is a
    violation of `metrics`."""
    if unknown := [name for name in metrics if name not in names]:
        violations.append(
            FieldViolation(
                "metrics", f"must name some of {', '.join(names)}, got {unknown[0][:32]!r}"
            )
        )
    return not metrics or any(name not in ("views", "visitors") for name in metrics)


def parse_metrics(metrics: Sequence[str], names: tuple[str, ...] = METRIC_NAMES) -> bool:
    """Whether `metrics` ask for a visit metric; InvalidArgument names `metrics` if one is
    unknown."""
    violations: list[FieldViolation] = []
    visits = wants_visits(metrics, names, violations)
    if violations:
        raise InvalidArgument(violations)
    return visits


def parse_breakdown(
    dimension: str,
    order_by: str,
    limit: int | None,
    offset: int,
    *,
    prefix: str = "",
    metrics: Sequence[str] = (),
) -> BreakdownAsk:
    """Check a breakdown's own arguments, applying defaults; InvalidArgument names each."""
    violations = dimension_violations(dimension, f"{prefix}dimension")
    visits = wants_visits(metrics, COUNT_NAMES, violations)
    order_by = order_by or "visitors"
    if order_by not in ORDERS:
        violations.append(
            FieldViolation(f"{prefix}order_by", f"must be one of {', '.join(ORDERS)}")
        )
    if limit is None or limit == 0:
        limit = DEFAULT_LIMIT
    elif not 1 <= limit <= MAX_LIMIT:
        violations.append(FieldViolation(f"{prefix}limit", f"must be between 1 and {MAX_LIMIT}"))
    if offset < 0:
        violations.append(FieldViolation(f"{prefix}offset", "must not be negative"))
    if violations:
        raise InvalidArgument(violations)
    return BreakdownAsk(dimension, order_by, limit, offset, visits or order_by == "visits")


def interval_violations(interval: str, field: str) -> list[FieldViolation]:
    if interval in INTERVALS:
        return []
    return [FieldViolation(field, f"must be one of {', '.join(INTERVALS)}, got {interval[:32]!r}")]


def _now() -> datetime:
    return datetime.now(UTC)


class ReportReader:
    def __init__(self, database: ReportDatabase, clock: Callable[[], datetime] = _now) -> None:
        self._database = database
        self._clock = clock

    async def period(self, scope: Scope) -> Period:
        """The period a scope names: its days in its zone (the site's unless it names one)."""
        period, _ = await self._period_in(scope)
        return period

    async def _period_in(self, scope: Scope) -> tuple[Period, bool]:
        """The period, and whether its zone is the site's (so its days are the aggregates')."""
        [facts] = await self._database.fetch(SITE_FACTS, scope.site_id)
        site_zone = ZoneInfo(facts["time_zone"] or "UTC")
        zone = scope.zone or site_zone
        first_event: datetime | None = facts["first_event"]
        first_day = first_event.astimezone(zone).date() if first_event else None
        today = self._clock().astimezone(zone).date()
        period = resolve(
            scope.keyword,
            first=scope.first,
            last=scope.last,
            zone=zone,
            today=today,
            first_event_day=first_day,
        )
        return period, zone == site_zone

    async def metrics(
        self, scope: Scope, *, compare: bool, visits_too: bool = True
    ) -> MetricsResult:
        period, site_days = await self._period_in(scope)
        previous = period.previous() if compare else None
        visits = await self._visit_metrics(scope, period) if visits_too else None
        before_visits = (
            await self._visit_metrics(scope, previous) if previous and visits_too else None
        )
        if any(each.on_visits for each in scope.filters):
            current = await self._visit_filtered_counts(scope, period)
            before = await self._visit_filtered_counts(scope, previous) if previous else None
            return MetricsResult(period, current, previous, before, visits, before_visits)
        kinds = _aggregate_kinds(scope.filters)
        if site_days and kinds is not None and previous is None and scope.keyword == "all":
            all_time = await self._all_time(scope.site_id, period, kinds.names)
            if all_time is not None:
                return MetricsResult(period, all_time, None, None, visits, None)
        if site_days and kinds is not None:
            firsts = [previous.first, period.first] if previous else [period.first]
            rows = await self._database.fetch(
                AGGREGATE_SERIES, scope.site_id, firsts[0], period.last, firsts, kinds.names
            )
            by_bucket = {row["bucket"]: Counts(row["views"], row["visitors"]) for row in rows}
            current = by_bucket.get(len(firsts), Counts(0, 0))
            before = by_bucket.get(1, Counts(0, 0)) if previous else None
            return MetricsResult(period, current, previous, before, visits, before_visits)
        start = previous.start if previous else period.start
        row = await self._fetchrow(METRICS, scope, start, period.end, [period.start])
        current = Counts(row["views"], row["visitors"])
        before = Counts(row["previous_views"], row["previous_visitors"]) if previous else None
        return MetricsResult(period, current, previous, before, visits, before_visits)

    async def _all_time(
        self, site_id: str, period: Period, kinds: list[str] | None
    ) -> Counts | None:
        """The counts of every day the aggregates hold, if `period` holds them all."""
        [row] = await self._database.fetch(AGGREGATE_ALL_TIME, site_id, kinds)
        if row["first_day"] is not None and not (
            period.first <= row["first_day"] and row["last_day"] <= period.last
        ):
            return None
        return Counts(row["views"], row["visitors"])

    async def _visit_metrics(self, scope: Scope, period: Period) -> VisitCounts:
        [row] = await self._fetch_visits(VISIT_METRICS, scope, period, [])
        return VisitCounts(row["visits"], row["bounces"], row["pages"], row["duration_us"])

    async def _visit_filtered_counts(self, scope: Scope, period: Period) -> Counts:
        """Views and visitors under a filter on a visit dimension."""
        [row] = await self._fetch_visits(VISIT_FILTERED_METRICS, scope, period, [])
        return Counts(row["views"], row["visitors"])

    async def time_series(
        self, scope: Scope, interval: str, *, prefix: str = "", visits_too: bool = True
    ) -> SeriesResult:
        interval = interval or "day"
        if violations := interval_violations(interval, f"{prefix}interval"):
            raise InvalidArgument(violations)
        period, site_days = await self._period_in(scope)
        _check_series_size(period, interval, prefix)
        starts = buckets(period, interval)
        instants: list[object] = [[b.start for b in starts]]
        kinds = _aggregate_kinds(scope.filters)
        if any(each.on_visits for each in scope.filters):
            rows = await self._fetch_visits(VISIT_FILTERED_SERIES, scope, period, instants)
            counts = {row["bucket"]: Counts(row["views"], row["visitors"]) for row in rows}
        elif site_days and interval in ("day", "week", "month") and kinds is not None:
            counts = await self._aggregate_series(
                scope.site_id, period, starts, kinds.names, interval
            )
        else:
            rows = await self._fetch(TIME_SERIES, scope, period.start, period.end, instants)
            counts = {row["bucket"]: Counts(row["views"], row["visitors"]) for row in rows}
        visits: dict[int, int] = {}
        if visits_too:
            visit_rows = await self._fetch_visits(VISIT_SERIES, scope, period, instants)
            visits = {row["bucket"]: row["visits"] for row in visit_rows}
        points = [
            SeriesPoint(
                bucket,
                counts.get(number, Counts(0, 0)),
                visits.get(number, 0) if visits_too else None,
            )
            for number, bucket in enumerate(starts, start=1)
        ]
        return SeriesResult(period, interval, points)

    async def _aggregate_series(
        self,
        site_id: str,
        period: Period,
        starts: list[Bucket],
        kinds: list[str] | None,
        interval: str,
    ) -> dict[int, Counts]:
        """Counts by bucket number (from 1) from the daily aggregates."""
        if interval == "day" and kinds is not None and len(kinds) == 1:
            rows = await self._database.fetch(
                AGGREGATE_DAYS, site_id, period.first, period.last, kinds[0]
            )
            number_of = {date.fromisoformat(b.label): n for n, b in enumerate(starts, start=1)}
            return {number_of[row["day"]]: Counts(row["views"], row["visitors"]) for row in rows}
        firsts = [date.fromisoformat(b.label) for b in starts]
        rows = await self._database.fetch(
            AGGREGATE_SERIES, site_id, period.first, period.last, firsts, kinds
        )
        return {row["bucket"]: Counts(row["views"], row["visitors"]) for row in rows}

    async def breakdown(self, scope: Scope, ask: BreakdownAsk) -> BreakdownResult:
        period = await self.period(scope)
        parameters: list[object] = [ask.limit, ask.offset]
        on_visits = ask.dimension in VISIT_VALUES or any(f.on_visits for f in scope.filters)
        if not ask.visits and not on_visits:
            return await self._event_breakdown(scope, period, ask)
        if ask.dimension in VISIT_VALUES:
            columns, dimension = "", VISIT_VALUES[ask.dimension]
        else:
            value = _dimension_sql(ask.dimension, parameters)
            columns, dimension = f"coalesce({value}, '')", "value_of"
        rows = await self._fetch_visits(
            VISIT_BREAKDOWN,
            scope,
            period,
            parameters,
            columns=columns,
            dimension=dimension,
            order=ask.order_by,
        )
        total = rows[0]["total_rows"] if rows else 0
        page = [
            BreakdownRow(
                row["value"], row["views"], row["visitors"], row["visits"] if ask.visits else None
            )
            for row in rows
            if row["value"] is not None
        ]
        return BreakdownResult(period, ask.dimension, page, total)

    async def _event_breakdown(
        self, scope: Scope, period: Period, ask: BreakdownAsk
    ) -> BreakdownResult:
        """A breakdown by an event dimension without visits: one pass over the events."""
        parameters: list[object] = [ask.limit, ask.offset]
        dimension = _dimension_sql(ask.dimension, parameters)
        rows = await self._fetch(
            BREAKDOWN,
            scope,
            period.start,
            period.end,
            parameters,
            dimension=dimension,
            order=ask.order_by,
        )
        total = rows[0]["total_rows"] if rows else 0
        page = [
            BreakdownRow(row["value"], row["views"], row["visitors"], None)
            for row in rows
            if row["value"] is not None
        ]
        return BreakdownResult(period, ask.dimension, page, total)

    async def export(self, scope: Scope) -> tuple[Period, AsyncIterator[ExportedEvent]]:
        """The period, and its events that pass the filters, oldest first, read as they are
        taken."""
        period = await self.period(scope)
        arguments: list[object] = [scope.site_id, period.start, period.end]
        sql = events_where(EXPORT, _filters_sql(scope.filters, arguments))

        async def events() -> AsyncIterator[ExportedEvent]:
            async for row in self._database.stream(sql, *arguments):
                yield ExportedEvent(*row)

        return period, events()

    async def _fetch(
        self,
        template: str,
        scope: Scope,
        start: datetime,
        end: datetime,
        parameters: list[object],
        **parts: str,
    ) -> list[asyncpg.Record]:
        arguments: list[object] = [scope.site_id, start, end, *parameters]
        filters = _filters_sql(scope.filters, arguments)
        sql = events_where(template, filters, **parts)
        return await self._database.fetch(sql, *arguments)

    async def _fetch_visits(
        self,
        template: str,
        scope: Scope,
        period: Period,
        parameters: list[object],
        columns: str = "",
        **parts: str,
    ) -> list[asyncpg.Record]:
        """A statement over report_queries.VISITS: the event filters decide which events (and
        so which visits) pass, the visit filters which visits."""
        arguments: list[object] = [scope.site_id, period.start, period.end, *parameters]
        passes = _conditions([f for f in scope.filters if not f.on_visits], arguments)
        visit_filters = _conditions([f for f in scope.filters if f.on_visits], arguments)
        sql = visits_sql(
            template,
            " AND ".join(passes) or "true",
            "".join(f"\n  AND {condition}" for condition in visit_filters),
            columns,
            **parts,
        )
        return await self._database.fetch_without_jit(sql, *arguments)

    async def _fetchrow(
        self, template: str, scope: Scope, start: datetime, end: datetime, parameters: list[object]
    ) -> asyncpg.Record:
        [row] = await self._fetch(template, scope, start, end, parameters)
        return row


@dataclass(frozen=True)
class _Kinds:
    """The event types the daily aggregates are to count."""

    names: list[str] | None  # None: every type


def _aggregate_kinds(filters: tuple[Filter, ...]) -> _Kinds | None:
    """What the daily aggregates count for these filters; None when they cannot answer them
    (a filter on another dimension than the event type, or by prefix)."""
    names: set[str] | None = None
    for each in filters:
        if each.dimension != "event_type" or each.operator != "is":
            return None
        names = set(each.values) if names is None else names & set(each.values)
    return _Kinds(None if names is None else sorted(names))


def _check_series_size(period: Period, interval: str, prefix: str) -> None:
    longest = MAX_DAYS.get(interval)
    if longest is not None and period.days > longest:
        raise InvalidArgument.single(
            f"{prefix}interval",
            f"a {interval} series covers at most {longest} day{'s' if longest > 1 else ''}; "
            f"the range has {period.days}",
        )
    if bucket_count(period, interval) > MAX_BUCKETS:
        raise InvalidArgument.single(
            f"{prefix}interval",
            f"a series has at most {MAX_BUCKETS} buckets; ask for a longer interval",
        )


def _dimension_sql(dimension: str, parameters: list[object]) -> str:
    """The SQL of a dimension's value; a property's key is added to the report's own
    `parameters`, which follow the LEADING ones."""
    if dimension.startswith(PROPERTY_PREFIX):
        parameters.append(dimension.removeprefix(PROPERTY_PREFIX))
        return property_value(f"${LEADING + len(parameters)}")
    return DIMENSION_VALUES[dimension]


def _filters_sql(filters: tuple[Filter, ...], arguments: list[object]) -> str:
    """The conditions of the (event) filters, ANDed, their values appended to `arguments`."""
    return "".join(f"\n  AND {condition}" for condition in _conditions(filters, arguments))


def _conditions(filters: Sequence[Filter], arguments: list[object]) -> list[str]:
    """Each filter's condition, its values appended to `arguments`."""
    conditions = []
    for each in filters:
        if each.dimension.startswith(PROPERTY_PREFIX):
            arguments.append(each.dimension.removeprefix(PROPERTY_PREFIX))
            value = f"coalesce({property_value(f'${len(arguments)}')}, '')"
        elif each.on_visits:
            value = VISIT_VALUES[each.dimension]
        else:
            value = DIMENSION_VALUES[each.dimension]
        arguments.append(list(each.values))
        conditions.append(
            FILTER_CONDITIONS[each.operator].format(value=value, values=f"${len(arguments)}")
        )
    return conditions
