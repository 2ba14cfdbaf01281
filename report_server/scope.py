"""What a report is asked about, checked: the site, the days (a keyword or explicit dates), the
time zone and the filters. Both doors build a Scope here, so a bad argument is refused with
the same words whichever door it came through, named as that door names it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from core.errors import FieldViolation, InvalidArgument
from core.events import site_id_violations
from core.sites import TIME_ZONES
from report_server.periods import RANGE_KEYWORDS

# Each event's own values (browser, os, device and country as the ingest server derived them
# from a browser's request; '' for other events).
EVENT_DIMENSIONS = ("event_type", "path", "referrer_host", "browser", "os", "device", "country")
# A visit's values, which every event of the visit shares: its first and last page viewed, and
# the referrer source and campaign of its first event (see report_server.report_queries).
VISIT_DIMENSIONS = (
    "entry_page",
    "exit_page",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
DIMENSIONS = EVENT_DIMENSIONS + VISIT_DIMENSIONS
PROPERTY_PREFIX = "property:"
OPERATORS = ("is", "prefix")
MAX_FILTER_VALUES = 100
MAX_FILTER_VALUE_LENGTH = 2048
MAX_PROPERTY_KEY_LENGTH = 64
# The longest explicit range, in days: two years and a leap day. Longer spans: "all".
MAX_RANGE_DAYS = 732

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: `\d` takes any script's
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Filter:
    dimension: str  # one of DIMENSIONS, or "property:<key>"
    operator: str  # one of OPERATORS
    values: tuple[str, ...]

    @property
    def on_visits(self) -> bool:
        """Whether it chooses visits (and their events) rather than events."""
        return self.dimension in VISIT_DIMENSIONS


@dataclass(frozen=True)
class Scope:
    site_id: str
    keyword: str  # a RANGE_KEYWORDS entry, or "" with first and last
    first: date | None
    last: date | None
    zone: ZoneInfo | None  # None: the site's
    filters: tuple[Filter, ...]


def parse_scope(
    site_id: str,
    *,
    range_keyword: str = "",
    start_date: str = "",
    end_date: str = "",
    timezone: str = "",
    filters: Sequence[tuple[str, str, Sequence[str]]] = (),
    prefix: str = "",
    default_range: str = "30d",
) -> Scope:
    """A checked Scope; InvalidArgument names every bad field, as `prefix` + its name
    ("scope.site_id" over gRPC, "site_id" over HTTP)."""
    violations = site_id_violations(site_id, f"{prefix}site_id")
    first, last = _days(range_keyword, start_date, end_date, prefix, violations)
    zone = time_zone_of(timezone, f"{prefix}timezone", violations) if timezone else None
    checked = tuple(
        _filter(dimension, operator, values, f"{prefix}filters[{index}]", violations)
        for index, (dimension, operator, values) in enumerate(filters)
    )
    if violations:
        raise InvalidArgument(violations)
    keyword = range_keyword or ("" if first else default_range)
    return Scope(site_id, keyword, first, last, zone, checked)


def time_zone_of(name: str, field: str, violations: list[FieldViolation]) -> ZoneInfo | None:
    """The IANA zone of that name, or None with a violation on `field`."""
    if name in TIME_ZONES:
        return ZoneInfo(name)
    violations.append(FieldViolation(field, f"is not an IANA time zone: {name[:64]!r}"))
    return None


def dimension_violations(dimension: str, field: str) -> list[FieldViolation]:
    """A dimension a report can break down or filter by."""
    if dimension in DIMENSIONS:
        return []
    if dimension.startswith(PROPERTY_PREFIX):
        key = dimension.removeprefix(PROPERTY_PREFIX)
        if 0 < len(key) <= MAX_PROPERTY_KEY_LENGTH and not _CONTROL.search(key):
            return []
        return [
            FieldViolation(
                field,
                f"a property key must be 1 to {MAX_PROPERTY_KEY_LENGTH} characters without "
                "control characters",
            )
        ]
    return [
        FieldViolation(
            field,
            f"must be one of {', '.join(DIMENSIONS)} or {PROPERTY_PREFIX}<key>, "
            f"got {dimension[:64]!r}",
        )
    ]


def _days(
    keyword: str, start_date: str, end_date: str, prefix: str, violations: list[FieldViolation]
) -> tuple[date | None, date | None]:
    if keyword:
        if keyword not in RANGE_KEYWORDS:
            violations.append(
                FieldViolation(
                    f"{prefix}range",
                    f"must be one of {', '.join(RANGE_KEYWORDS)}, got {keyword[:32]!r}",
                )
            )
        if start_date or end_date:
            violations.append(
                FieldViolation(f"{prefix}range", "must not be given with start_date or end_date")
            )
        return None, None
    if not start_date and not end_date:
        return None, None
    first = _calendar_day(f"{prefix}start_date", start_date, violations) if start_date else None
    last = _calendar_day(f"{prefix}end_date", end_date, violations) if end_date else None
    if not start_date:
        violations.append(FieldViolation(f"{prefix}start_date", "is required with end_date"))
    if not end_date:
        violations.append(FieldViolation(f"{prefix}end_date", "is required with start_date"))
    if first is None or last is None:
        return None, None
    if last < first:
        violations.append(FieldViolation(f"{prefix}end_date", "must not be before start_date"))
    elif (last - first).days >= MAX_RANGE_DAYS:
        violations.append(
            FieldViolation(
                f"{prefix}end_date",
                f"must be at most {MAX_RANGE_DAYS - 1} days after start_date (longer: range=all)",
            )
        )
    return first, last


def _calendar_day(field: str, text: str, violations: list[FieldViolation]) -> date | None:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        violations.append(FieldViolation(field, "must be a calendar date as YYYY-MM-DD"))
        return None


def _filter(
    dimension: str,
    operator: str,
    values: Sequence[str],
    field: str,
    violations: list[FieldViolation],
) -> Filter:
    violations += dimension_violations(dimension, f"{field}.dimension")
    operator = operator or "is"
    if operator not in OPERATORS:
        violations.append(
            FieldViolation(
                f"{field}.operator", f"must be one of {', '.join(OPERATORS)}, got {operator[:32]!r}"
            )
        )
    if not 0 < len(values) <= MAX_FILTER_VALUES:
        violations.append(
            FieldViolation(f"{field}.values", f"must hold 1 to {MAX_FILTER_VALUES} values")
        )
    elif any(len(v) > MAX_FILTER_VALUE_LENGTH or _CONTROL.search(v) for v in values):
        violations.append(
            FieldViolation(
                f"{field}.values",
                f"each must be at most {MAX_FILTER_VALUE_LENGTH} characters without control "
                "characters",
            )
        )
    return Filter(dimension, operator, tuple(values))
