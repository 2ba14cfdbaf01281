"""What a site record is: its fields and their rules, shared by every door that reads or
writes one."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from core.errors import FieldViolation

DEFAULT_TIME_ZONE = "UTC"
MAX_NAME_LENGTH = 200
# The names of the tz database (the system's, else the tzdata package's), read once.
TIME_ZONES = frozenset(zoneinfo.available_timezones())

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    time_zone: str
    created_at: datetime
    updated_at: datetime


def name_violations(name: str, field: str = "name") -> list[FieldViolation]:
    if not name.strip():
        return [FieldViolation(field, "must not be empty")]
    if len(name) > MAX_NAME_LENGTH:
        return [FieldViolation(field, f"must be at most {MAX_NAME_LENGTH} characters")]
    if _CONTROL.search(name):
        return [FieldViolation(field, "must not contain control characters")]
    return []


def time_zone_violations(time_zone: str, field: str = "time_zone") -> list[FieldViolation]:
    """An IANA time zone name, as the tz database spells it ("America/New_York")."""
    if time_zone not in TIME_ZONES:
        return [FieldViolation(field, f"is not an IANA time zone: {time_zone[:64]!r}")]
    return []
