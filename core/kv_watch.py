"""A NATS key-value bucket watched into memory: every server that serves by a bucket's values
(site records, credentials) reads them from a dictionary, so that no request waits on NATS or
PostgreSQL for them, and a change (a revoked key) reaches every server within moments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from core.retry import describe

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WatchedBucket(Generic[T]):
    def __init__(self, kv: KeyValue, parse: Callable[[str, bytes], T], what: str) -> None:
        """`parse` reads a key's value (ValueError for one it cannot: logged and left out);
        `what` names the values in log lines."""
        self._kv = kv
        self._parse = parse
        self._what = what
        self._values: dict[str, T] = {}
        self._revisions: dict[str, int] = {}
        self._loaded = asyncio.Event()

    @property
    def values(self) -> Mapping[str, T]:
        return self._values

    def get(self, key: str) -> T | None:
        return self._values.get(key)

    async def loaded(self) -> None:
        """Return once the values the bucket held when watching began are in memory."""
        await self._loaded.wait()

    def forget(self, key: str) -> None:
        """Take a deletion this process made itself at once, rather than when the watch brings
        it back (NATS does not say a deletion's revision): the key's values of the revisions
        seen so far are not taken again, should the watch bring one late."""
        self.apply(key, None, self._revisions.get(key, 0) + 1)

    def apply(self, key: str, value: T | None, revision: int) -> None:
        """Take a change at `revision` (`value` None: deleted): from the watch, or one this
        process made itself, at once; an older revision of the key changes nothing."""
        if revision < self._revisions.get(key, 0):
            return
        self._revisions[key] = revision
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value

    async def run(self) -> None:
        """Follow the bucket until cancelled. nats-py's watcher is an ordered consumer, which
        recovers from reconnections by itself."""
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the end of the values the bucket held at the start
                    self._loaded.set()
                    continue
                revision = entry.revision or 0
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    self.apply(entry.key, None, revision)
                    continue
                try:
                    value = self._parse(entry.key, entry.value)
                except ValueError as error:
                    logger.warning(
                        "%s %r is not readable, ignored: %s", self._what, entry.key, error
                    )
                    continue
                self.apply(entry.key, value, revision)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped


async def bucket_contents(kv: KeyValue) -> dict[str, bytes]:
    """Every value the bucket holds, read in one pass of a watcher (to reconcile it with
    PostgreSQL)."""
    watcher = await kv.watchall()
    contents: dict[str, bytes] = {}
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                contents.pop(entry.key, None)
            else:
                contents[entry.key] = entry.value
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
    return contents


async def make_bucket_hold(kv: KeyValue, wanted: Mapping[str, bytes]) -> int:
    """Put each wanted value the bucket lacks or holds otherwise, delete each key it holds
    beyond them; how many keys were put or deleted. The database is the truth: this repairs a
    bucket that missed a change (NATS was down when it was made)."""
    held = await bucket_contents(kv)
    changes = 0
    for key, value in wanted.items():
        if held.get(key) != value:
            await kv.put(key, value)
            changes += 1
    for key in held.keys() - wanted.keys():
        await kv.delete(key)
        changes += 1
    return changes


async def reconciling(
    reconcile: Callable[[], Awaitable[int]],
    interval: float,
    what: str,
    passing: tuple[type[BaseException], ...],
) -> None:
    """Run `reconcile` at once and then every `interval` seconds, until cancelled; an error of
    `passing` (a dependency away) is logged and tried again next time."""
    while True:
        try:
            if changes := await reconcile():
                logger.info("reconciled the %s: %d keys put or deleted", what, changes)
        except passing as error:
            logger.warning("could not reconcile the %s: %s", what, describe(error))
        await asyncio.sleep(interval)
