"""The client library against the real stack: what it sends is stored once, what the server
refuses is reported and not sent again, and flush() and close() keep their time bounds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from dataclasses import replace

import asyncpg
from analytics_client import AsyncClient, Client, ClientClosedError, Rejection, Stats, Violation

from core.settings import Settings
from ingest_server.service import ingest_doors
from runtime.serve import ApiServer, serving
from tests.client.stored import counted_views, stored_count, stored_ids
from tests.support.waiting import eventually
from writer.service import RunningWriter, running_writer

EVENTS = 1200  # more than two batches of 500


def track_many(client: Client, count: int) -> list[str | None]:
    return [
        client.track("site-1", "page_view", f"/p{n % 7}", user_id=f"u{n % 11}")
        for n in range(count)
    ]


def unreachable_target() -> str:
    """An address of 127.0.0.1 on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_every_event_the_client_tracks_from_threads_is_stored_once(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    client = Client(str(api.grpc))
    # The client blocks its callers' threads; the servers run on this test's event loop.
    ids = await asyncio.to_thread(track_many, client, EVENTS)
    assert await asyncio.to_thread(client.close, 30)

    await eventually(lambda: stored_count(db), EVENTS)
    assert await stored_ids(db) == Counter({i: 1 for i in ids if i is not None})
    assert await counted_views(db) == EVENTS
    assert client.stats == Stats(
        queued=0, sent=EVENTS, rejected=0, dropped=0, retried=0, abandoned=0
    )


async def test_every_event_the_async_client_tracks_is_stored_once(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    async with AsyncClient(str(api.grpc)) as client:
        ids = [
            await client.track("site-1", "page_view", f"/p{n % 7}", user_id=f"u{n % 11}")
            for n in range(EVENTS)
        ]

    await eventually(lambda: stored_count(db), EVENTS)
    assert await stored_ids(db) == Counter({i: 1 for i in ids if i is not None})
    assert client.stats.sent == EVENTS


async def test_streams_the_server_ends_at_its_time_bound_lose_and_double_nothing(
    settings: Settings, db: asyncpg.Connection
) -> None:
    settings = replace(settings, ingest_stream_max_seconds=0.5)
    async with serving(settings, [ingest_doors]) as api, running_writer(settings):
        async with AsyncClient(str(api.grpc), batch_size=50, flush_interval=0.01) as client:
            ids = []
            for n in range(2000):  # for a few seconds: several streams' lives
                ids.append(await client.track("site-1", "page_view", f"/p{n % 7}"))
                await asyncio.sleep(0.001)

        await eventually(lambda: stored_count(db), len(ids))
    assert await stored_ids(db) == Counter({i: 1 for i in ids if i is not None})
    assert await counted_views(db) == len(ids)
    assert client.stats.sent == len(ids)


async def test_an_event_id_given_to_track_is_the_one_stored(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    async with AsyncClient(str(api.grpc)) as client:
        returned = await client.track("site-1", "signup", "/join", event_id="order-42:signup")

    await eventually(lambda: stored_count(db), 1)
    assert (returned, await stored_ids(db)) == ("order-42:signup", Counter({"order-42:signup": 1}))


async def test_an_event_the_server_rejects_is_reported_and_counted_and_not_sent_again(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    rejections: list[Rejection] = []
    async with AsyncClient(str(api.grpc), on_rejected=rejections.append) as client:
        bad = await client.track("site-1", "page_view", "home")
        good = await client.track("site-1", "page_view", "/home")
        assert await client.flush(timeout=10)

        assert [(r.event.event_id, r.violations) for r in rejections] == [
            (bad, (Violation("path", "must start with '/'"),))
        ]
        assert client.stats == Stats(
            queued=0, sent=1, rejected=1, dropped=0, retried=0, abandoned=0
        )
    await eventually(lambda: stored_count(db), 1)
    assert await stored_ids(db) == Counter({good: 1})


async def test_flush_gives_up_after_its_timeout_and_keeps_the_events_while_unanswered() -> None:
    async with AsyncClient(unreachable_target()) as client:
        for _ in range(3):
            await client.track("site-1", "page_view", "/")

        assert await client.flush(timeout=0.5) is False
        assert client.stats.queued == 3
        await client.close(timeout=0)


async def test_close_gives_up_within_its_timeout_and_counts_what_it_abandons() -> None:
    client = AsyncClient(unreachable_target())
    for _ in range(3):
        await client.track("site-1", "page_view", "/")
    started = time.monotonic()

    assert await client.close(timeout=1.0) is False

    assert time.monotonic() - started < 5.0  # the timeout, and a moment to stop
    stats = client.stats
    assert (stats.queued, stats.sent, stats.abandoned) == (0, 0, 3)


async def test_a_full_queue_drops_new_events_and_counts_them() -> None:
    async with AsyncClient(unreachable_target(), max_queue=2) as client:
        ids = [await client.track("site-1", "page_view", "/") for _ in range(3)]

        assert [i is None for i in ids] == [False, False, True]
        assert client.stats.dropped == 1
        await client.close(timeout=0)


async def test_a_closed_client_takes_no_events() -> None:
    client = AsyncClient(unreachable_target())
    await client.close()

    try:
        await client.track("site-1", "page_view", "/")
    except ClientClosedError:
        pass
    else:
        raise AssertionError("track() after close() did not raise")
