"""From stream messages to rows: what the writer stores, and what it calls poison."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics.internal.v1.stream_pb2 import EventBatch
from analytics.v1.event_pb2 import Event

from writer.decoding import Poison, Row, rows_of

RECEIVED = datetime(2025, 11, 14, 12, 0, 1, 250000, tzinfo=UTC)
OCCURRED = datetime(2025, 11, 14, 11, 59, 58, 123456, tzinfo=UTC)


def message(*events: Event, received: datetime | None = RECEIVED) -> bytes:
    batch = EventBatch(events=events)
    if received is not None:
        batch.received_at.FromDatetime(received)
    return batch.SerializeToString()


def event(**fields: object) -> Event:
    complete: dict[str, object] = {
        "event_id": "e-1",
        "site_id": "s",
        "event_type": "page_view",
        "path": "/",
    }
    result = Event(**{**complete, **fields})  # type: ignore[arg-type]
    if "timestamp" not in fields:
        result.timestamp.FromDatetime(OCCURRED)
    return result


def test_every_event_of_a_message_becomes_a_row_in_order() -> None:
    rows = rows_of(message(event(event_id="a"), event(event_id="b")))

    assert [row.event_id for row in rows] == ["a", "b"]


def test_a_row_holds_every_field_with_microsecond_times() -> None:
    full = event(user_id="u", referrer="https://r.example/", properties={"b": "2", "a": "1"})

    assert rows_of(message(full)) == [
        Row(
            "e-1",
            "s",
            "page_view",
            "/",
            "u",
            OCCURRED,
            "https://r.example/",
            '{"a": "1", "b": "2"}',
            RECEIVED,
        )
    ]


def test_absent_optional_fields_become_nulls_and_empty_properties() -> None:
    [row] = rows_of(message(event()))

    assert (row.user_id, row.referrer, row.properties) == (None, None, "{}")


def test_bytes_that_are_not_an_event_batch_are_poison() -> None:
    with pytest.raises(Poison, match=r"not an analytics\.internal\.v1\.EventBatch"):
        rows_of(b"\xff\xff\xff")


def test_a_message_without_receive_time_is_poison() -> None:
    with pytest.raises(Poison, match="received_at is not set"):
        rows_of(message(event(), received=None))


def test_an_event_lacking_what_makes_it_storable_is_poison_naming_it() -> None:
    lacking = Event(site_id="s", event_type="page_view")

    with pytest.raises(Poison, match="event 1 lacks event_id, path, timestamp"):
        rows_of(message(event(), lacking))


def test_a_timestamp_beyond_what_a_datetime_holds_is_poison() -> None:
    far = event()
    far.timestamp.seconds = 400_000_000_000

    with pytest.raises(Poison, match="event 0 timestamp is out of range"):
        rows_of(message(far))
