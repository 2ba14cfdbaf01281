"""Storing the archived stream's events again (writer/reconsume.py, `analytics-replay consume`):
events already stored change no number, missing ones are stored and counted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from analytics.v1.event_pb2 import Event
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from core.migrator import migrate
from core.settings import Settings
from core.stream import ArchiveStream, EventStream, encode_batch
from devstack.embedded import EmbeddedPostgres
from tests.support.env import settings_env
from tests.support.waiting import eventually
from writer.rebuild import rebuild
from writer.reconsume import reconsume
from writer.service import running_writer
from writer.store import EventStore

DAY = datetime(2025, 11, 14, 10, 0, tzinfo=UTC)
MESSAGES = 6
EVENTS_PER_MESSAGE = 50


def message_events(message: int) -> list[Event]:
    """A message's events: two sites, a few paths, users and anonymous events."""
    events = []
    for n in range(EVENTS_PER_MESSAGE):
        event = Event(
            event_id=f"m{message}-{n}",
            site_id=f"site-{n % 2}",
            event_type="page_view",
            path=f"/p{n % 5}",
            user_id=f"u{(message * 7 + n) % 13}" if n % 3 else "",
        )
        event.timestamp.FromDatetime(DAY + timedelta(hours=message * 5, minutes=n))
        events.append(event)
    return events


async def counts(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    """Every number a report reads (user bitmaps as their counts: the users' numbers depend on
    the order they were first stored in)."""
    queries = {
        "events": "SELECT count(*) FROM events",
        "daily_totals": "SELECT site_id, event_type, day, views, users, anonymous_visitors "
        "FROM daily_totals ORDER BY 1, 2, 3",
        "daily_path_views": "SELECT * FROM daily_path_views ORDER BY 1, 2, 3, 4",
        "all_time_path_views": "SELECT * FROM all_time_path_views ORDER BY 1, 2, 3",
        "all_time_users": "SELECT site_id, event_type, sum(bit_count(bits)) "
        "FROM all_time_user_bitmaps GROUP BY 1, 2 ORDER BY 1, 2",
    }
    return {name: [tuple(r) for r in await pool.fetch(query)] for name, query in queries.items()}


@pytest.fixture
async def archived(settings: Settings, js: JetStreamContext) -> AsyncIterator[Settings]:
    """Settings whose writer keeps the archive stream; it is deleted after the test."""
    archived = dataclasses.replace(settings, stream_archive_days=1)
    yield archived
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(ArchiveStream.from_settings(archived).name)


@pytest.fixture
async def stored(archived: Settings, js: JetStreamContext, pool: asyncpg.Pool) -> ArchiveStream:
    """MESSAGES messages published, stored by a writer, and archived."""
    archive = ArchiveStream.from_settings(archived)
    async with running_writer(archived):
        for message in range(MESSAGES):
            await js.publish(
                EventStream.from_settings(archived).subject,
                encode_batch(message_events(message), DAY),
            )
        await eventually(lambda: pool.fetchval("SELECT count(*) FROM events"), 300)
    # JetStream republishes each message to the archive after storing it.
    await eventually(lambda: _messages(js, archive.name), MESSAGES)
    return archive


async def _messages(js: JetStreamContext, name: str) -> int:
    return (await js.stream_info(name)).state.messages


@pytest.fixture
async def empty_pool(postgres_server: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    """A second database, migrated, with nothing stored."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        async with asyncpg.create_pool(postgres_server.url(name), min_size=1, max_size=2) as pool:
            await migrate(pool)
            yield pool
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_replaying_events_already_stored_changes_no_number(
    stored: ArchiveStream, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    before = await counts(pool)

    replayed = await reconsume(js, EventStore(pool), stored, 1, batch_events=120)

    assert (replayed.messages, replayed.events, replayed.stored) == (MESSAGES, 300, 0)
    assert await counts(pool) == before


async def test_replaying_into_an_empty_database_restores_every_number(
    stored: ArchiveStream, js: JetStreamContext, pool: asyncpg.Pool, empty_pool: asyncpg.Pool
) -> None:
    replayed = await reconsume(js, EventStore(empty_pool), stored, 1, batch_events=120)

    assert replayed.stored == 300
    assert await counts(empty_pool) == await counts(pool)


async def test_replaying_from_a_time_stores_the_messages_archived_since(
    stored: ArchiveStream, js: JetStreamContext, empty_pool: asyncpg.Pool
) -> None:
    fifth = await js.get_msg(stored.name, 5)
    assert fifth.time is not None

    replayed = await reconsume(js, EventStore(empty_pool), stored, fifth.time)

    assert (replayed.messages, replayed.stored) == (2, 100)
    assert await empty_pool.fetchval("SELECT min(event_id) FROM events") == "m4-0"


async def test_raw_events_lost_come_back_from_a_replay_and_their_days_from_a_rebuild(
    stored: ArchiveStream, js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    before = await counts(pool)
    for table in ("events", "event_ids"):  # lost with their ids, as a restore loses them
        await pool.execute(
            f"DELETE FROM {table} WHERE event_id LIKE 'm2-%' OR event_id LIKE 'm3-1_'"
        )

    replayed = await reconsume(js, EventStore(pool), stored, 1)
    # The aggregates still counted the lost events, and the replay counted them again.
    for site in ("site-0", "site-1"):
        await rebuild(pool, site, DAY.date(), DAY.date() + timedelta(days=2))

    assert replayed.stored == 50 + 10
    assert await counts(pool) == before


async def test_the_command_replays_from_a_sequence(
    stored: ArchiveStream, archived: Settings, pool: asyncpg.Pool
) -> None:
    for table in ("events", "event_ids"):
        await pool.execute(f"DELETE FROM {table} WHERE event_id LIKE 'm5-%'")

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "writer.replay_cli", "consume", "--sequence", "6"],
        env=settings_env(archived),
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.splitlines()[-1].startswith(
        f"replayed {stored.name} up to sequence 6: 1 messages, 50 events, 50 stored anew"
    )
    assert await pool.fetchval("SELECT count(*) FROM events") == 300
