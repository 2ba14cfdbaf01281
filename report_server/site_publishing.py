"""The site records the ingest servers serve by, published from the registry to the SITES_BUCKET
key-value bucket (core.site_records): at once when a site is created or changed, and every
SITES_RECONCILE_INTERVAL by comparing the whole bucket with PostgreSQL, which puts what a lost
publish (NATS down at the time, a crash between the commit and the publish) or a race of two
changes left wrong, and deletes the records of sites that are gone.
"""

from __future__ import annotations

import logging

import asyncpg
import nats.errors
from nats.js.kv import KeyValue

from core.database import POSTGRES_UNAVAILABLE
from core.kv_watch import WatchedBucket, make_bucket_hold, reconciling
from core.retry import describe
from core.site_records import SiteRecord
from core.sites import Site
from report_server.site_queries import ALL_SITE_RECORDS

logger = logging.getLogger(__name__)
# Failures the next reconcile may outlive.
_PASSING: tuple[type[BaseException], ...] = (*POSTGRES_UNAVAILABLE, nats.errors.Error, TimeoutError)


def record_of(site: Site) -> SiteRecord:
    return SiteRecord(
        site.site_id,
        site.time_zone,
        site.allowed_origins,
        site.ingest_policy,
        site.report_visibility,
    )


class SitePublisher:
    def __init__(
        self,
        kv: KeyValue,
        pool: asyncpg.Pool,
        interval: float,
        watched: WatchedBucket[SiteRecord] | None = None,
    ) -> None:
        """`watched`: this process's own copy of the bucket, which takes each record it puts at
        once (a site made public is readable here as soon as the change is answered)."""
        self._kv = kv
        self._pool = pool
        self._interval = interval
        self._watched = watched

    async def publish(self, site: Site) -> None:
        """Put the site's record; a failure is logged, and the next reconcile puts it."""
        record = record_of(site)
        try:
            revision = await self._kv.put(site.site_id, record.to_json())
            if self._watched is not None:
                self._watched.apply(site.site_id, record, revision)
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning(
                "could not publish site %r to the ingest servers (the next reconcile will): %s",
                site.site_id,
                describe(error),
            )

    async def reconcile(self) -> int:
        """Make the bucket hold every site's record as PostgreSQL has it, and no other; how
        many keys were put or deleted."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(ALL_SITE_RECORDS)
        wanted = {
            row["site_id"]: SiteRecord(
                row["site_id"],
                row["time_zone"],
                tuple(row["allowed_origins"]),
                row["ingest_policy"],
                row["report_visibility"],
            ).to_json()
            for row in rows
        }
        return await make_bucket_hold(self._kv, wanted)

    async def run(self) -> None:
        """Reconcile at once and then every interval, until cancelled."""
        await reconciling(self.reconcile, self._interval, "site records", _PASSING)
