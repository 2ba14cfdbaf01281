"""The client through an outage of NATS under the ingest server: ten seconds of failed streams
mid-way, and every event tracked is stored exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from analytics_client import Client

from core.settings import Settings
from devstack.embedded import EmbeddedNats
from ingest_server.service import ingest_doors
from runtime.serve import serving
from tests.client.stored import counted_views, stored_count, stored_ids
from tests.support.waiting import eventually
from writer.service import running_writer

OUTAGE_SECONDS = 10.0


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A NATS server this test may stop and start."""
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


class Producer:
    """Tracks events from a thread of its own, a few hundred a second, until stopped."""

    def __init__(self, client: Client) -> None:
        self.ids: list[str | None] = []
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce)

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _produce(self) -> None:
        number = 0
        while not self._stop.wait(0.005):
            path = f"/p{number % 5}"
            self.ids.append(self._client.track("site-1", "page_view", path, user_id="u1"))
            number += 1


async def test_every_event_tracked_through_a_ten_second_nats_outage_is_stored_once(
    settings: Settings, own_nats: EmbeddedNats, db: asyncpg.Connection
) -> None:
    settings = replace(settings, nats_url=own_nats.url)
    async with serving(settings, [ingest_doors]) as api, running_writer(settings):
        # Blocking rather than dropping when full, so that nothing tracked is lost whatever the
        # queue's bound.
        client = Client(str(api.grpc), when_full="block", batch_size=100, flush_interval=0.05)
        with Producer(client) as producer:
            await eventually(lambda: _stored_some(db), True, within=10)
            own_nats.stop()
            await asyncio.sleep(OUTAGE_SECONDS)
            sent_before = client.stats.sent
            own_nats.start()
            # Events tracked during the outage, and after it, go through.
            await eventually(lambda: _sent_more_than(client, sent_before), True, within=60)
        assert await asyncio.to_thread(client.close, 60)

        tracked = [i for i in producer.ids if i is not None]
        assert len(tracked) == len(producer.ids)
        await eventually(lambda: stored_count(db), len(tracked), within=60)
    assert await stored_ids(db) == Counter(dict.fromkeys(tracked, 1))
    assert await counted_views(db) == len(tracked)
    stats = client.stats
    assert (stats.sent, stats.rejected, stats.dropped, stats.abandoned) == (len(tracked), 0, 0, 0)
    assert stats.retried > 0  # the outage failed streams with requests in flight


async def _stored_some(db: asyncpg.Connection) -> bool:
    return await stored_count(db) > 0


async def _sent_more_than(client: Client, sent: int) -> bool:
    return client.stats.sent > sent
