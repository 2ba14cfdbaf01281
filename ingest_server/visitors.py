"""Cookie-less visitors: a visitor id per site, browser and UTC day, that no one can turn back
into an IP address or link to the same browser's id of another day.

The id is BLAKE2b, keyed with the day's secret, of the site, the client IP and the user agent.
Every ingest server uses the same secret for a day, so that one visitor gets one id whichever
server answers: the first server to need a day's key creates it in a NATS KV bucket
(create-if-absent: the others read the winner's), and the keys of past days are purged from the
bucket (which also expires anything older than KEY_TTL_SECONDS by itself). Tomorrow's key is
made ahead, so that no request waits for a key at midnight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from core.errors import Unavailable
from core.retry import describe

KEY_BYTES = 32
# The bucket forgets a key this long after it was written, even with no server left to purge
# it: yesterday's key must outlive only the last events of yesterday.
KEY_TTL_SECONDS = 2 * 86400
REFRESH_SECONDS = 60.0

logger = logging.getLogger(__name__)


def _today() -> date:
    return datetime.now(UTC).date()


class VisitorKeys:
    def __init__(self, kv: KeyValue, today: Callable[[], date] = _today) -> None:
        self._kv = kv
        self._today = today
        self._keys: dict[date, bytes] = {}
        self._hashes: dict[date, hashlib.blake2b] = {}  # each key's hash state, once keyed

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        bucket: str,
        replicas: int = 1,
        today: Callable[[], date] = _today,
    ) -> VisitorKeys:
        config = KeyValueConfig(
            bucket=bucket,
            history=1,
            ttl=KEY_TTL_SECONDS,
            replicas=replicas,
            storage=StorageType.FILE,
        )
        return cls(await js.create_key_value(config), today)

    async def refresh(self) -> None:
        """Hold today's and tomorrow's keys, creating them where no server has yet; forget
        and purge the keys of past days."""
        today = self._today()
        for day in (today, today + timedelta(days=1)):
            if day not in self._keys:
                self._keys[day] = await self._key(day)
        for day in [day for day in self._keys if day < today]:
            del self._keys[day]
            self._hashes.pop(day, None)
        try:
            stored = await self._kv.keys()
        except NoKeysError:
            stored = []
        for name in stored:
            if name < _name(today):
                await self._kv.purge(name)

    async def run(self) -> None:
        """Refresh every REFRESH_SECONDS, until cancelled; a failure is logged and retried."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except (nats.errors.Error, TimeoutError) as error:
                logger.warning("could not refresh the visitor keys: %s", describe(error))

    def visitor_id(self, day: date, site_id: str, ip: str, user_agent: str) -> int:
        """The visitor's id on `day` (UTC), a signed 64-bit integer other than 0. Raises
        Unavailable if this server could not get the day's key from NATS."""
        keyed = self._hashes.get(day)
        if keyed is None:
            key = self._keys.get(day)
            if key is None:
                raise Unavailable("the visitor key of the day is not known yet; retry")
            keyed = self._hashes[day] = hashlib.blake2b(key=key, digest_size=8)
        # A copy of the keyed state: keying a new hash costs as much as hashing the text.
        hashing = keyed.copy()
        hashing.update(f"{site_id}\n{ip}\n{user_agent}".encode(errors="replace"))
        return int.from_bytes(hashing.digest(), "big", signed=True) or 1

    async def _key(self, day: date) -> bytes:
        name = _name(day)
        # Another server may have made it first: theirs is everyone's.
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.create(name, secrets.token_bytes(KEY_BYTES))
        entry = await self._kv.get(name)
        assert entry.value is not None
        return entry.value


def _name(day: date) -> str:
    """The key's name; names sort as their days do."""
    return f"day-{day.isoformat()}"
