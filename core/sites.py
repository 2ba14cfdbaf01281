"""What a site record is: its fields and their rules, shared by every door that reads or
writes one."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from core.access import INGEST_BROWSERS, INGEST_POLICIES, PRIVATE, VISIBILITIES
from core.errors import FieldViolation

DEFAULT_TIME_ZONE = "UTC"
MAX_NAME_LENGTH = 200
MAX_ALLOWED_ORIGINS = 100
# The names of the tz database (the system's, else the tzdata package's), read once.
TIME_ZONES = frozenset(zoneinfo.available_timezones())

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A host name as browsers send it in Origin (IDNs in their xn-- form), or an IPv4 address.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    time_zone: str
    created_at: datetime
    updated_at: datetime
    # Origins or host names its pages may send events from; empty: any (see normal_origins).
    allowed_origins: tuple[str, ...] = ()
    # core.access: INGEST_BROWSERS or INGEST_KEY_REQUIRED; PRIVATE or PUBLIC.
    ingest_policy: str = INGEST_BROWSERS
    report_visibility: str = PRIVATE


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


def normal_origins(
    entries: Sequence[str], field: str = "allowed_origins"
) -> tuple[tuple[str, ...], list[FieldViolation]]:
    """The allowed origins as stored (lower case, without a trailing '/', each once, in the
    order given), and what is wrong with them. An entry is an origin as a browser sends it in
    its `Origin` header ("https://example.com", "http://localhost:8080") or a host name
    ("example.com"), which allows that host under any scheme and port."""
    if len(entries) > MAX_ALLOWED_ORIGINS:
        return (), [FieldViolation(field, f"must hold at most {MAX_ALLOWED_ORIGINS} entries")]
    normal: dict[str, None] = {}
    violations = []
    for index, entry in enumerate(entries):
        origin = _normal_origin(entry)
        if origin is None:
            violations.append(
                FieldViolation(
                    f"{field}[{index}]",
                    "must be an origin like https://example.com or a host name like example.com",
                )
            )
        else:
            normal[origin] = None
    return tuple(normal), violations


def _normal_origin(entry: str) -> str | None:
    text = entry.strip().lower().removesuffix("/")
    if "://" not in text:
        return text if _HOST.fullmatch(text) else None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or not (_HOST.fullmatch(host) or (":" in host and parts.netloc.startswith("[")))
    ):
        return None
    return f"{parts.scheme}://{parts.netloc}" if port is not None else f"{parts.scheme}://{host}"


def ingest_policy_violations(policy: str, field: str = "ingest_policy") -> list[FieldViolation]:
    if policy not in INGEST_POLICIES:
        return [FieldViolation(field, f"must be one of {', '.join(INGEST_POLICIES)}")]
    return []


def visibility_violations(
    visibility: str, field: str = "report_visibility"
) -> list[FieldViolation]:
    if visibility not in VISIBILITIES:
        return [FieldViolation(field, f"must be one of {', '.join(VISIBILITIES)}")]
    return []
