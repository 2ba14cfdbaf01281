"""The site records an ingest server serves by: the SITES_BUCKET key-value bucket, watched into
a dictionary, so that a request reads its site's settings from memory (core.site_records says
what a record holds). A site without a record has the default one: open to every origin.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from core.site_records import SiteRecord, site_bucket

logger = logging.getLogger(__name__)
_DEFAULT = SiteRecord("")


class SiteRecords:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._records: dict[str, SiteRecord] = {}
        self._loaded = asyncio.Event()

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, replicas: int = 1) -> SiteRecords:
        return cls(await site_bucket(js, bucket, replicas))

    def get(self, site_id: str) -> SiteRecord:
        """The site's record; for a site without one, the default (its site_id left empty)."""
        return self._records.get(site_id, _DEFAULT)

    async def loaded(self) -> None:
        """Return once the records the bucket held when watching began are in memory."""
        await self._loaded.wait()

    async def run(self) -> None:
        """Follow the bucket until cancelled. nats-py's watcher is an ordered consumer, which
        recovers from reconnections by itself."""
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the end of the values the bucket held at the start
                    self._loaded.set()
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    self._records.pop(entry.key, None)
                    continue
                try:
                    self._records[entry.key] = SiteRecord.from_json(entry.value)
                except ValueError as error:
                    logger.warning("site record %r is not readable, ignored: %s", entry.key, error)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
