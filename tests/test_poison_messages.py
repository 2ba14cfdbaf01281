"""Messages the writer cannot store move to the dead letters after a bounded number of
deliveries, with the reason; everything else keeps flowing; dead letters can be replayed."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from analytics.internal.v1.stream_pb2 import EventContext
from analytics.v1.event_pb2 import Event
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy
from nats.js.errors import BadRequestError

from core.settings import Settings
from core.stream import (
    MAX_STREAM_MESSAGE_BYTES,
    DeadLetterStream,
    EventStream,
    decode_message,
    encode_batch,
)
from tests.support.env import settings_env
from tests.support.text import incompressible
from tests.support.waiting import eventually
from writer.dead_letters import DeadLetter, DeadLetters
from writer.service import running_writer

DAY = datetime(2025, 11, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def quick_settings(settings: Settings) -> Settings:
    return replace(settings, writer_max_deliveries=3)


@pytest.fixture
async def writer_running(quick_settings: Settings, db: asyncpg.Connection) -> AsyncIterator[None]:
    async with running_writer(quick_settings):
        yield


@pytest.fixture
def dead_letters(js: JetStreamContext, quick_settings: Settings) -> DeadLetters:
    return DeadLetters(js, DeadLetterStream.from_settings(quick_settings))


def event(event_id: str, path: str = "/home") -> Event:
    result = Event(event_id=event_id, site_id="site-1", event_type="page_view", path=path)
    result.timestamp.FromDatetime(DAY)
    return result


def message(*events: Event) -> bytes:
    return encode_batch(events, DAY)


async def stored_ids(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch("SELECT event_id FROM events ORDER BY event_id")
    return [row["event_id"] for row in rows]


async def letters(dead_letters: DeadLetters) -> list[DeadLetter]:
    return [letter async for letter in dead_letters.all()]


async def reasons(dead_letters: DeadLetters) -> list[str]:
    return [letter.reason for letter in await letters(dead_letters)]


async def data_of(dead_letters: DeadLetters) -> list[bytes]:
    return [letter.data for letter in await letters(dead_letters)]


async def data_sizes(dead_letters: DeadLetters) -> list[int]:
    return [len(letter.data) for letter in await letters(dead_letters)]


async def publish(js: JetStreamContext, stream: EventStream, *payloads: bytes) -> list[int]:
    acks = [await js.publish(stream.subject, payload) for payload in payloads]
    return [ack.seq for ack in acks]


async def test_an_undecodable_message_becomes_a_dead_letter_and_the_rest_is_stored(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    [_, poison_sequence, _] = await publish(
        js, stream, message(event("a")), b"\xff not protobuf", message(event("b"))
    )

    await eventually(
        lambda: reasons(dead_letters),
        [
            "not an analytics.internal.v1.EventBatch: Error parsing message with type "
            "'analytics.internal.v1.EventBatch': Wire format was corrupt"
        ],
    )
    [letter] = await letters(dead_letters)
    assert (letter.original_subject, letter.original_sequence, letter.deliveries) == (
        stream.subject,
        poison_sequence,
        3,
    )
    assert letter.data == b"\xff not protobuf"
    assert await stored_ids(db) == ["a", "b"]


async def test_the_largest_message_the_stream_takes_can_become_a_dead_letter(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    poison = b"\xff" * MAX_STREAM_MESSAGE_BYTES
    await publish(js, stream, poison, message(event("a")))

    await eventually(lambda: stored_ids(db), ["a"])
    await eventually(lambda: data_sizes(dead_letters), [MAX_STREAM_MESSAGE_BYTES])


async def test_a_message_too_large_to_become_a_dead_letter_is_refused_by_the_stream(
    writer_running: None, js: JetStreamContext, stream: EventStream
) -> None:
    with pytest.raises(BadRequestError) as refusal:
        await js.publish(stream.subject, b"\xff" * (MAX_STREAM_MESSAGE_BYTES + 1))

    assert refusal.value.description == "message size exceeds maximum allowed"


# Validation keeps both out of events; a message from elsewhere can still hold them.
@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/a\x00b", 'invalid byte sequence for encoding "UTF8": 0x00'),
        (
            "/" + incompressible(1000),
            "index row size 4040 exceeds btree version 4 maximum 2704"
            ' for index "all_time_path_views_pkey"',
        ),
    ],
    ids=["a NUL byte", "a path too long for an index entry"],
)
async def test_an_event_postgresql_refuses_becomes_a_dead_letter_and_its_batch_is_stored(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
    path: str,
    reason: str,
) -> None:
    good = [message(event(f"good-{n}")) for n in range(6)]
    await publish(js, stream, *good[:3], message(event("bad", path=path)), *good[3:])

    await eventually(lambda: stored_ids(db), [f"good-{n}" for n in range(6)])
    await eventually(lambda: reasons(dead_letters), [f"PostgreSQL refused it: {reason}"])
    assert await db.fetchval("SELECT views FROM daily_totals") == 6


async def test_an_event_postgresql_refuses_is_a_dead_letter_alone_the_rest_of_its_message_stored(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    refused = event("bad", path="/a\x00b")
    [sequence] = await publish(js, stream, message(event("good-1"), refused, event("good-2")))

    # Stored at its first delivery, before the refused event has used up its deliveries.
    await eventually(lambda: stored_ids(db), ["good-1", "good-2"])
    assert await letters(dead_letters) == []
    await eventually(lambda: _count(dead_letters), 1)
    [letter] = await letters(dead_letters)
    assert (letter.original_sequence, letter.original_position, letter.deliveries) == (
        sequence,
        1,
        3,
    )
    assert letter.reason == 'PostgreSQL refused it: invalid byte sequence for encoding "UTF8": 0x00'
    assert list(decode_message(letter.data).events) == [refused]
    assert await db.fetchval("SELECT views FROM daily_totals") == 2


async def test_an_event_without_an_event_id_is_a_dead_letter_alone(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    await publish(js, stream, message(event("a"), event(""), event("c")))

    await eventually(lambda: reasons(dead_letters), ["event 1 lacks event_id"])
    [letter] = await letters(dead_letters)
    assert letter.original_position == 1
    assert list(decode_message(letter.data).events) == [event("")]
    assert await stored_ids(db) == ["a", "c"]


async def test_the_lines_about_an_event_that_cannot_be_stored_name_its_request(
    writer_running: None,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="writer.consumer")
    events = [event("a"), event(""), event("c")]

    await publish(
        js,
        stream,
        encode_batch(
            events, DAY, [EventContext(request_id=r) for r in ("req-a", "req-bad", "req-c")]
        ),
    )

    await eventually(lambda: reasons(dead_letters), ["event 1 lacks event_id"])
    lines = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    [moved] = [
        r.getMessage() for r in caplog.records if "moved to the dead letters" in r.getMessage()
    ]
    assert lines
    assert all("(delivery" in line and "requests req-bad)" in line for line in lines)
    assert "(requests req-bad)" in moved
    [letter] = await letters(dead_letters)
    assert decode_message(letter.data).request_ids == ["req-bad"]


async def test_the_dead_letter_stream_is_bounded_as_configured(
    writer_running: None, js: JetStreamContext, quick_settings: Settings
) -> None:
    config = (await js.stream_info(quick_settings.dead_letter_stream)).config

    assert (config.max_bytes, config.max_msgs, config.discard) == (
        quick_settings.dead_letter_max_bytes,
        quick_settings.dead_letter_max_msgs,
        DiscardPolicy.NEW,
    )


async def test_a_letter_the_full_dead_letter_stream_refuses_waits_unacknowledged_for_room(
    settings: Settings,
    db: asyncpg.Connection,
    js: JetStreamContext,
    stream: EventStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    one_letter = replace(settings, writer_max_deliveries=1, dead_letter_max_msgs=1)
    dead_letters = DeadLetters(js, DeadLetterStream.from_settings(one_letter))
    caplog.set_level(logging.WARNING, logger="writer.consumer")
    async with running_writer(one_letter):
        await publish(js, stream, b"garbage one")
        await eventually(lambda: _count(dead_letters), 1)
        await publish(js, stream, b"garbage two", message(event("a")))
        await eventually(lambda: _adding_a_letter_failed(caplog), True)
        # The good message is stored on its own, whenever its batch commits.
        await eventually(lambda: stored_ids(db), ["a"])

        assert await _unacknowledged(js, one_letter) == 1
        [first] = await letters(dead_letters)
        await dead_letters.drop(first)
        await eventually(lambda: data_of(dead_letters), [b"garbage two"])
        await eventually(lambda: _unacknowledged(js, one_letter), 0)


async def _adding_a_letter_failed(caplog: pytest.LogCaptureFixture) -> bool:
    return any("adding a dead letter failed" in record.getMessage() for record in caplog.records)


async def _unacknowledged(js: JetStreamContext, settings: Settings) -> int:
    info = await js.consumer_info(settings.stream_name, settings.writer_durable)
    pending: int = info.num_ack_pending
    return pending


async def test_a_replayed_dead_letter_is_stored_once_its_cause_is_fixed(
    writer_running: None,
    http: httpx.AsyncClient,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    # A rule the event breaks, as a later migration might bring.
    await db.execute("ALTER TABLE events ADD CONSTRAINT no_admin CHECK (path <> '/admin')")
    # This month's first instant: the event goes to this month's partition, which PostgreSQL
    # names.
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    accepted = await http.post(
        "/event",
        json={
            "site_id": "site-1",
            "event_type": "page_view",
            "path": "/admin",
            "event_id": "x",
            "timestamp": month.isoformat(),
        },
    )
    assert accepted.status_code == 202
    await eventually(
        lambda: reasons(dead_letters),
        [
            f'PostgreSQL refused it: new row for relation "events_{month:%Y_%m}" violates check '
            'constraint "no_admin"'
        ],
    )
    await db.execute("ALTER TABLE events DROP CONSTRAINT no_admin")

    [letter] = await letters(dead_letters)
    await dead_letters.replay(letter)

    await eventually(lambda: stored_ids(db), ["x"])
    assert await letters(dead_letters) == []


async def test_the_command_lists_replays_and_drops_dead_letters(
    writer_running: None,
    quick_settings: Settings,
    js: JetStreamContext,
    stream: EventStream,
    dead_letters: DeadLetters,
    db: asyncpg.Connection,
) -> None:
    await publish(js, stream, b"garbage one", b"garbage two")
    await eventually(lambda: _count(dead_letters), 2)
    first, second = await letters(dead_letters)

    def command(*arguments: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "writer.dead_letters_cli", *arguments],
            env=settings_env(quick_settings),
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    listing = command("list")
    first_only = command("list", "--limit", "1")
    dropped = command("drop", str(first.sequence))
    after_drop = await letters(dead_letters)

    assert listing.splitlines()[0].startswith("SEQUENCE  DEAD AT (UTC)")
    assert [line.split()[0] for line in listing.splitlines()[1:]] == [
        str(first.sequence),
        str(second.sequence),
    ]
    assert "not an analytics.internal.v1.EventBatch" in listing
    assert first_only.splitlines()[1:] == [
        listing.splitlines()[1],
        "... more dead letters not shown (--limit 1)",
    ]
    assert dropped == "dropped 1 dead letter\n"
    assert [letter.sequence for letter in after_drop] == [second.sequence]
    assert command("replay", "--all") == "replayed 1 dead letter\n"


async def _count(dead_letters: DeadLetters) -> int:
    return len(await letters(dead_letters))
