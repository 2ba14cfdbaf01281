"""From stream messages to rows: what the writer stores, and what it cannot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics.internal.v1.stream_pb2 import EventBatch
from analytics.v1.event_pb2 import Event

from writer.decoding import Poison, Row, contents_of

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
    contents = contents_of(message(event(event_id="a"), event(event_id="b")))

    assert [row.event_id for row in contents.rows] == ["a", "b"]
    assert (contents.positions, contents.unstorable) == ([0, 1], {})


def test_a_row_holds_every_field_with_microsecond_times() -> None:
    full = event(user_id="u", referrer="https://r.example/", properties={"b": "2", "a": "1"})

    assert contents_of(message(full)).rows == [
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
    [row] = contents_of(message(event())).rows

    assert (row.user_id, row.referrer, row.properties) == (None, None, "{}")


def test_bytes_that_are_not_an_event_batch_are_poison() -> None:
    with pytest.raises(Poison, match=r"not an analytics\.internal\.v1\.EventBatch"):
        contents_of(b"\xff\xff\xff")


def test_a_message_without_receive_time_is_poison() -> None:
    with pytest.raises(Poison, match="received_at is not set"):
        contents_of(message(event(), received=None))


def test_an_event_lacking_what_makes_it_storable_is_unstorable_alone() -> None:
    lacking = Event(site_id="s", event_type="page_view")

    contents = contents_of(message(event(event_id="a"), lacking, event(event_id="c")))

    assert [row.event_id for row in contents.rows] == ["a", "c"]
    assert contents.positions == [0, 2]
    assert contents.unstorable == {1: "event 1 lacks event_id, path, timestamp"}


def test_a_timestamp_beyond_what_a_datetime_holds_is_unstorable() -> None:
    far = event()
    far.timestamp.seconds = 400_000_000_000

    assert contents_of(message(far)).unstorable == {0: "event 0 timestamp is out of range"}
