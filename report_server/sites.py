"""The site registry, as every door sees it: create, get, list, update.

A site's time zone decides the days of its daily aggregates (the writer counts each event on
its day in that zone), so a new zone counts the site's stored events again, in the transaction
that changes it, while its row is locked: the writer's batches of the site wait for it.

What the ingest servers need of a site (its allowed origins, its time zone) is published to
them after each change (report_server.site_publishing).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from core.access import INGEST_BROWSERS, PRIVATE
from core.database import reachable
from core.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound
from core.events import site_id_violations
from core.schema import STORAGE_UPKEEP_LOCK_KEY
from core.sites import (
    DEFAULT_TIME_ZONE,
    Site,
    ingest_policy_violations,
    name_violations,
    normal_origins,
    time_zone_violations,
    visibility_violations,
)
from core.week_rollups import MIN_WEEK_VIEWS, ROLL_UP_SITE_WEEKS
from report_server.site_publishing import SitePublisher
from report_server.site_queries import (
    CREATE_SITE,
    DELETE_SITE_DAYS,
    GET_SITE,
    HOLD_OFF_RETENTION,
    LIST_SITES,
    LOCK_SITE,
    RECOUNT_SITE_DAYS,
    UPDATE_SITE,
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
UPDATABLE_FIELDS = (
    "name",
    "time_zone",
    "allowed_origins",
    "ingest_policy",
    "report_visibility",
)


@dataclass(frozen=True)
class SitePage:
    sites: Sequence[Site]
    next_page_token: str  # empty on the last page


@dataclass(frozen=True)
class SiteChanges:
    """The fields an update sets; None leaves a field as it is."""

    name: str | None = None
    time_zone: str | None = None
    allowed_origins: Sequence[str] | None = None
    ingest_policy: str | None = None
    report_visibility: str | None = None


class SiteRegistry:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: SitePublisher | None = None,
        *,
        min_week_views: int = MIN_WEEK_VIEWS,
    ) -> None:
        """`min_week_views`: the fewest views of a week rolled up (core.week_rollups) when a
        new zone counts the site's days and weeks again."""
        self._pool = pool
        self._publisher = publisher
        self._min_week_views = min_week_views

    async def create(
        self,
        site_id: str,
        name: str = "",
        time_zone: str = "",
        allowed_origins: Sequence[str] = (),
        *,
        ingest_policy: str = "",
        report_visibility: str = "",
    ) -> Site:
        """Raises InvalidArgument, AlreadyExists, Unavailable."""
        name = name or site_id
        time_zone = time_zone or DEFAULT_TIME_ZONE
        ingest_policy = ingest_policy or INGEST_BROWSERS
        report_visibility = report_visibility or PRIVATE
        violations = site_id_violations(site_id)
        if not violations:
            violations += name_violations(name)
        violations += time_zone_violations(time_zone)
        origins, origin_violations = normal_origins(allowed_origins)
        violations += origin_violations
        violations += ingest_policy_violations(ingest_policy)
        violations += visibility_violations(report_visibility)
        if violations:
            raise InvalidArgument(violations)
        async with reachable():
            row = await self._pool.fetchrow(
                CREATE_SITE,
                site_id,
                name,
                time_zone,
                list(origins),
                ingest_policy,
                report_visibility,
            )
        if row is None:
            raise AlreadyExists(f"site {site_id!r} exists; change it with an update")
        return await self._published(_site(row))

    async def get(self, site_id: str) -> Site:
        """Raises InvalidArgument, NotFound, Unavailable."""
        if violations := site_id_violations(site_id):
            raise InvalidArgument(violations)
        async with reachable():
            row = await self._pool.fetchrow(GET_SITE, site_id)
        if row is None:
            raise _not_found(site_id)
        return _site(row)

    async def list(self, page_size: int = 0, page_token: str = "") -> SitePage:
        """Sites by site_id, `page_size` at a time (0: DEFAULT_PAGE_SIZE)."""
        violations: list[FieldViolation] = []
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            violations.append(FieldViolation("page_size", f"must be at most {MAX_PAGE_SIZE}"))
        after = _decoded_token(page_token, violations)
        if violations:
            raise InvalidArgument(violations)
        size = page_size or DEFAULT_PAGE_SIZE
        async with reachable():
            rows = await self._pool.fetch(LIST_SITES, after, size + 1)
        sites = [_site(row) for row in rows[:size]]
        more = len(rows) > size
        return SitePage(sites, _token(sites[-1].site_id) if more else "")

    async def update(self, site_id: str, changes: SiteChanges) -> Site:
        """Raises InvalidArgument, NotFound, Unavailable. A new time zone counts the site's
        days again from its raw events before this returns; it is refused once retention has
        dropped some of them."""
        origins = _valid_changes(site_id, changes)
        async with reachable(), self._pool.acquire() as connection, connection.transaction():
            if changes.time_zone is not None:
                await connection.execute(HOLD_OFF_RETENTION, STORAGE_UPKEEP_LOCK_KEY)
            current = await connection.fetchrow(LOCK_SITE, site_id)
            if current is None:
                raise _not_found(site_id)
            name = current["name"] if changes.name is None else changes.name
            zone = current["time_zone"] if changes.time_zone is None else changes.time_zone
            if origins is None:
                origins = tuple(current["allowed_origins"])
            policy = changes.ingest_policy or current["ingest_policy"]
            visibility = changes.report_visibility or current["report_visibility"]
            row = await connection.fetchrow(
                UPDATE_SITE, site_id, name, zone, list(origins), policy, visibility
            )
            if zone != current["time_zone"]:
                if current["first_event_at"] is not None:
                    raise InvalidArgument.single(
                        "site.time_zone",
                        "cannot change: counting the site's days in a new zone needs all its "
                        "raw events, and retention (RAW_EVENT_RETENTION_DAYS) has dropped some "
                        f"(the first of {current['first_event_at'].isoformat()})",
                    )
                for statement in DELETE_SITE_DAYS:
                    await connection.execute(statement, site_id)
                for statement in RECOUNT_SITE_DAYS:
                    await connection.execute(statement, site_id, zone)
                # asyncpg sends date.min and date.max as -infinity and infinity: every week.
                await connection.execute(
                    ROLL_UP_SITE_WEEKS, site_id, date.min, date.max, self._min_week_views
                )
        assert row is not None
        return await self._published(_site(row))

    async def _published(self, site: Site) -> Site:
        if self._publisher is not None:
            await self._publisher.publish(site)
        return site


def _valid_changes(site_id: str, changes: SiteChanges) -> tuple[str, ...] | None:
    """The changed origins, normalised (None: unchanged); raises InvalidArgument naming every
    field at fault."""
    violations = site_id_violations(site_id, "site.site_id")
    if changes.name is not None:
        violations += name_violations(changes.name, "site.name")
    if changes.time_zone is not None:
        violations += time_zone_violations(changes.time_zone, "site.time_zone")
    origins: tuple[str, ...] | None = None
    if changes.allowed_origins is not None:
        origins, origin_violations = normal_origins(changes.allowed_origins, "site.allowed_origins")
        violations += origin_violations
    if changes.ingest_policy is not None:
        violations += ingest_policy_violations(changes.ingest_policy, "site.ingest_policy")
    if changes.report_visibility is not None:
        violations += visibility_violations(changes.report_visibility, "site.report_visibility")
    if violations:
        raise InvalidArgument(violations)
    return origins


def _site(row: asyncpg.Record) -> Site:
    return Site(
        site_id=row["site_id"],
        name=row["name"],
        time_zone=row["time_zone"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        allowed_origins=tuple(row["allowed_origins"]),
        ingest_policy=row["ingest_policy"],
        report_visibility=row["report_visibility"],
    )


def _not_found(site_id: str) -> NotFound:
    return NotFound(f"site {site_id!r} is not registered")


def _token(site_id: str) -> str:
    return base64.urlsafe_b64encode(site_id.encode()).decode().rstrip("=")


def _decoded_token(token: str, violations: list[FieldViolation]) -> str:
    """The last site_id of the page before; '' for the first page."""
    if not token:
        return ""
    try:
        after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not after or site_id_violations(after):
        violations.append(FieldViolation("page_token", "is not a token this server gave"))
    return after
