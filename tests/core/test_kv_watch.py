"""A bucket watched into memory takes this process's own changes at once, and a value the watch
brings late does not undo them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from core.kv_watch import WatchedBucket
from tests.support.waiting import eventually


@pytest.fixture
async def kv(js: JetStreamContext) -> AsyncIterator[KeyValue]:
    name = f"WATCH_{uuid.uuid4().hex[:12]}"
    yield await js.create_key_value(KeyValueConfig(bucket=name))
    await js.delete_key_value(name)


async def _bucket(kv: KeyValue) -> WatchedBucket[bytes]:
    return WatchedBucket(kv, lambda key, value: value, "value")


async def test_a_deletion_made_here_is_not_undone_by_the_put_it_deleted(
    kv: KeyValue,
) -> None:
    bucket = await _bucket(kv)
    bucket.apply("k", b"one", 5)

    bucket.forget("k")
    bucket.apply("k", b"one", 5)  # the watch bringing the put late

    assert bucket.get("k") is None


async def test_a_later_revision_is_taken(kv: KeyValue) -> None:
    bucket = await _bucket(kv)
    bucket.apply("k", b"one", 5)
    bucket.forget("k")

    bucket.apply("k", b"two", 9)

    assert bucket.get("k") == b"two"


async def test_the_watch_follows_puts_and_deletes(kv: KeyValue) -> None:
    bucket = await _bucket(kv)
    await kv.put("k", b"one")
    watching = asyncio.create_task(bucket.run())
    try:
        await bucket.loaded()
        loaded = bucket.get("k")
        await kv.delete("k")

        async def value() -> bytes | None:
            return bucket.get("k")

        await eventually(value, None, within=5)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)

    assert loaded == b"one"
