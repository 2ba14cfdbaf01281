"""Storing the events of the archive stream (core.stream.ArchiveStream) again, from a sequence
or a time on: after a restore of PostgreSQL from a backup older than the stream's last days, or
raw events deleted by mistake.

An ephemeral consumer of our own reads the archive in order, up to the last message it held
when the replay began; the events go through the writer's own conversion and statement
(EventStore.store). The store keeps each (site_id, event_id) once, so an event already stored
changes nothing and one missing is stored and counted: a replay may cover more than what was
lost, and run twice. The consumer acknowledges nothing and leaves the writer's consumer and the
event stream alone.

Filtered-traffic counts are not replayed: a window's id is remembered only for a day
(writer.queries.STORE_FILTERED_TRAFFIC), so adding an older window again would count it twice.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from core.stream import ArchiveStream
from writer.decoding import Poison, Row, contents_of
from writer.store import REFUSALS, EventStore

FETCH_MESSAGES = 200
FETCH_TIMEOUT_SECONDS = 5.0
# How long JetStream keeps the replay's consumer after the replay stops asking (a crash).
CONSUMER_INACTIVE_SECONDS = 60.0


@dataclass
class Replayed:
    """How far a replay got: messages read (up to `last_sequence`), events found in them and
    stored anew, and what was skipped."""

    last_sequence: int
    sequence: int = 0
    messages: int = 0
    events: int = 0
    stored: int = 0
    filtered_skipped: int = 0
    unreadable: int = 0
    refused: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def reconsume(
    js: JetStreamContext,
    store: EventStore,
    archive: ArchiveStream,
    start: int | datetime,
    *,
    batch_events: int = 5000,
    progress: Callable[[Replayed], None] = lambda _: None,
    progress_seconds: float = 5.0,
) -> Replayed:
    """Store every event of the archive's messages from sequence `start` (or those it took
    from time `start` on) up to its last message now; `progress` hears every
    `progress_seconds` and at the end."""
    started = time.perf_counter()
    state = (await js.stream_info(archive.name)).state
    replayed = Replayed(last_sequence=state.last_seq)
    if state.messages == 0:
        return replayed
    name = f"replay-{uuid.uuid4().hex[:12]}"
    config = ConsumerConfig(
        name=name,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=CONSUMER_INACTIVE_SECONDS,
        mem_storage=True,
        filter_subject=archive.subjects,
    )
    if isinstance(start, datetime):
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, start
    else:
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start
    await js.add_consumer(archive.name, config)
    subscription = await js.pull_subscribe_bind(name, archive.name)
    rows: list[Row] = []
    said = time.perf_counter()
    try:
        finished = False
        while not finished:
            try:
                messages = await subscription.fetch(FETCH_MESSAGES, timeout=FETCH_TIMEOUT_SECONDS)
            except TimeoutError:
                break  # nothing left before last_sequence (aged out, or a start past it)
            for message in messages:
                finished = _take(message, replayed, rows)
                if finished:
                    break
            if len(rows) >= batch_events:
                await _store(store, rows, replayed)
                rows = []
            if time.perf_counter() - said >= progress_seconds:
                replayed.seconds = time.perf_counter() - started
                progress(replayed)
                said = time.perf_counter()
        await _store(store, rows, replayed)
    finally:
        await subscription.unsubscribe()
        # If this fails, JetStream drops it after CONSUMER_INACTIVE_SECONDS.
        with contextlib.suppress(nats.errors.Error):
            await js.delete_consumer(archive.name, name)
    replayed.seconds = time.perf_counter() - started
    progress(replayed)
    return replayed


def _take(message: Msg, replayed: Replayed, rows: list[Row]) -> bool:
    """Add the message's rows; whether the replay is done (this is its last message, or one
    taken after it began)."""
    sequence = message.metadata.sequence.stream
    if sequence > replayed.last_sequence:
        return True
    replayed.sequence = sequence
    replayed.messages += 1
    if message.subject.endswith(".filtered.counts"):
        replayed.filtered_skipped += 1
    else:
        try:
            rows += contents_of(message.data).rows
        except Poison:
            replayed.unreadable += 1
    return sequence == replayed.last_sequence


async def _store(store: EventStore, rows: list[Row], replayed: Replayed) -> None:
    """Store the rows; when PostgreSQL refuses one, store them one by one, noting those it
    refuses (the writer has moved them to the dead letters already)."""
    if not rows:
        return
    replayed.events += len(rows)
    try:
        replayed.stored += await store.store(rows)
        return
    except REFUSALS:
        pass
    for row in rows:
        try:
            replayed.stored += await store.store([row])
        except REFUSALS as refusal:
            replayed.refused.append(f"{row.site_id}/{row.event_id}: {refusal.message}")
