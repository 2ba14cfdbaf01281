"""Writes decoded events to PostgreSQL, idempotently, aggregates included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from analytics.v1.event_pb2 import Event

from writer.queries import STORE_EVENTS


@dataclass(frozen=True)
class ReceivedEvent:
    """An event from the stream with the time its ingest server received it."""

    event: Event
    received_at: datetime


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store(self, batch: Sequence[ReceivedEvent]) -> int:
        """Store a batch in one transaction; return how many events were new.

        Storing the same events again stores and counts nothing, so a batch may be retried
        after any failure, including one after the commit.
        """
        columns: tuple[list[object], ...] = tuple([] for _ in range(9))
        for item in batch:
            event = item.event
            row = (
                event.event_id,
                event.site_id,
                event.event_type,
                event.path,
                event.user_id or None,
                event.timestamp.ToDatetime(tzinfo=UTC),
                event.referrer or None,
                json.dumps(dict(event.properties), ensure_ascii=False, sort_keys=True),
                item.received_at,
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        async with self._pool.acquire() as connection:
            stored: int = await connection.fetchval(STORE_EVENTS, *columns)
        return stored
