"""The reports, answered by brute force over the events a test stored: each event's local time
in the zone read directly, nothing shared with the report server but the rules. What a report
says must equal what this says."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from report_server.scope import Filter


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    site_id: str
    event_type: str
    path: str
    at: datetime  # aware
    user_id: str | None = None
    referrer: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    # The cookie-less visitor the ingest server derived for a browser's event (0: none).
    visitor_id: int = 0

    @property
    def visitor(self) -> str | None:
        """Who the event's visitor is: its user, else its anonymous visitor."""
        if self.user_id:
            return self.user_id
        return f"anonymous {self.visitor_id}" if self.visitor_id else None


def referrer_host(referrer: str | None) -> str:
    if not referrer:
        return ""
    parts = urlsplit(referrer)
    if not parts.scheme or not parts.netloc:
        return ""
    return (parts.hostname or "").lower().removeprefix("www.")


def value_of(event: StoredEvent, dimension: str) -> str:
    if dimension.startswith("property:"):
        return event.properties.get(dimension.removeprefix("property:"), "")
    if dimension == "referrer_host":
        return referrer_host(event.referrer)
    value: str = getattr(event, dimension)
    return value


def passes(event: StoredEvent, filters: Sequence[Filter]) -> bool:
    for each in filters:
        value = value_of(event, each.dimension)
        if each.operator == "is" and value not in each.values:
            return False
        if each.operator == "prefix" and not any(value.startswith(v) for v in each.values):
            return False
    return True


def selected(
    events: Iterable[StoredEvent],
    site_id: str,
    first: date,
    last: date,
    zone: ZoneInfo,
    filters: Sequence[Filter] = (),
) -> list[StoredEvent]:
    """The site's events whose local date in `zone` is from `first` to `last`, passing the
    filters."""
    return [
        e
        for e in events
        if e.site_id == site_id
        and first <= e.at.astimezone(zone).date() <= last
        and passes(e, filters)
    ]


def counts(events: Sequence[StoredEvent]) -> tuple[int, int]:
    """(views, visitors)."""
    return len(events), len({e.visitor for e in events if e.visitor})


def label(event: StoredEvent, zone: ZoneInfo, interval: str) -> str:
    local = event.at.astimezone(zone)
    day = local.date()
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if interval == "month":
        return day.replace(day=1).isoformat()
    offset = local.strftime("%z")
    minute = local.minute if interval == "minute" else 0
    return f"{local:%Y-%m-%dT%H}:{minute:02d}:00{offset[:3]}:{offset[3:]}"


def series(
    events: Sequence[StoredEvent], zone: ZoneInfo, interval: str
) -> dict[str, tuple[int, int]]:
    """(views, visitors) by bucket label, for the buckets that have events."""
    grouped: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        grouped[label(event, zone, interval)].append(event)
    return {name: counts(members) for name, members in grouped.items()}


def breakdown(
    events: Sequence[StoredEvent], dimension: str, order_by: str
) -> list[tuple[str, int, int]]:
    """Every row, (value, views, visitors), ranked as the report ranks them."""
    grouped: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        grouped[value_of(event, dimension)].append(event)
    rows: list[tuple[str, int, int]] = []
    for value, members in grouped.items():
        views, visitors = counts(members)
        rows.append((value, views, visitors))
    # Code point order of the value breaks ties, as PostgreSQL's "C" collation does for UTF-8.
    if order_by == "visitors":
        return sorted(rows, key=lambda row: (-row[2], row[0].encode()))
    return sorted(rows, key=lambda row: (-row[1], row[0].encode()))
