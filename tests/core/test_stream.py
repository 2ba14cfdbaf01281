"""The event stream's codec: what the ingest servers write and the writer reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics.internal.v1.stream_pb2 import EventBatch, EventContext
from analytics.v1.event_pb2 import Event

from core.stream import (
    MAX_MESSAGE_BYTES,
    NO_CONTEXT,
    UndecodableMessage,
    context_field,
    decode_message,
    encode_batch,
    encode_messages,
    message_id,
)

# A message written by the version that declared EventBatch in the public analytics.v1
# package (before 2026-12-06): analytics.v1.EventBatch{events: [one event with every field],
# received_at: 2025-11-14T10:00:01Z}, serialized by protobuf.
MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH = bytes.fromhex(
    "0a640a0d6f726465722d34323a766965771208736974652d3132331a09706167655f7669657722092f636865"
    "636b6f75742a03753130320b08a0fbdbc806108094ef3a3a1468747470733a2f2f6578616d706c652e636f6d"
    "2f420b0a04706c616e120370726f120608a1fbdbc806"
)
RECEIVED = datetime(2025, 11, 14, 10, 0, 1, tzinfo=UTC)


def test_a_message_written_before_the_stream_message_left_the_public_package_is_read() -> None:
    message = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH)

    expected = Event(
        event_id="order-42:view",
        site_id="site-123",
        event_type="page_view",
        path="/checkout",
        user_id="u10",
        referrer="https://example.com/",
        properties={"plan": "pro"},
    )
    expected.timestamp.FromJsonString("2025-11-14T10:00:00.123456Z")
    assert list(message.events) == [expected]
    assert message.received_at.ToDatetime(UTC) == RECEIVED


def test_the_bytes_written_now_are_the_bytes_written_before() -> None:
    event = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH).events[0]

    [(payload, _)] = encode_messages([event], RECEIVED)

    assert payload == MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH
    assert encode_batch([event], RECEIVED) == MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH


def test_bytes_that_are_not_an_event_batch_are_undecodable() -> None:
    with pytest.raises(UndecodableMessage, match=r"not an analytics\.internal\.v1\.EventBatch"):
        decode_message(b"\xff\xff")


def test_a_message_without_receive_time_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage, match="received_at is not set"):
        decode_message(b"")


def test_a_message_of_one_event_is_identified_by_its_site_and_event_id() -> None:
    shop_a = Event(site_id="shop-a", event_id="order-42:view")
    shop_b = Event(site_id="shop-b", event_id="order-42:view")

    assert [message_id([shop_a]), message_id([shop_b])] == [
        "event-shop-a/order-42:view",
        "event-shop-b/order-42:view",
    ]


def test_messages_of_the_same_event_ids_in_other_sites_have_other_ids() -> None:
    ids = ["e-1", "e-2"]

    in_a = message_id([Event(site_id="a", event_id=i) for i in ids])
    in_b = message_id([Event(site_id="b", event_id=i) for i in ids])

    assert in_a.startswith("batch-")
    assert in_a != in_b


def test_each_event_carries_the_request_id_of_its_request() -> None:
    events = [Event(site_id="s", event_id=f"e-{i}", path="/") for i in range(3)]
    first, second = context_field("req-1"), context_field("req-2")

    [(payload, _)] = encode_messages(events, RECEIVED, [first, first, second])

    assert decode_message(payload).request_ids == ["req-1", "req-1", "req-2"]


def test_the_events_read_the_same_with_contexts_as_without() -> None:
    events = [Event(site_id="s", event_id=f"e-{i}", path="/") for i in range(3)]

    [(payload, _)] = encode_messages(events, RECEIVED, [context_field("req-1")] * 3)

    assert list(decode_message(payload).events) == events


def test_a_message_of_requests_that_told_nothing_carries_no_contexts() -> None:
    event = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH).events[0]

    [(payload, _)] = encode_messages([event], RECEIVED, [NO_CONTEXT])

    assert payload == MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH


def test_a_message_without_contexts_reads_as_events_of_no_request_id() -> None:
    message = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH)

    assert message.request_ids == [""]


def test_a_message_of_fewer_contexts_than_events_reads_the_rest_as_empty() -> None:
    events = [Event(site_id="s", event_id=f"e-{i}", path="/") for i in range(2)]
    batch = EventBatch(events=events, contexts=[EventContext(request_id="req-1")])
    batch.received_at.FromDatetime(RECEIVED)

    assert decode_message(batch.SerializeToString()).request_ids == ["req-1", ""]


def test_contexts_count_towards_the_size_of_a_message() -> None:
    # Events of 1000 bytes: without contexts, 500 fit in one message under MAX_MESSAGE_BYTES.
    events = [Event(site_id="s", event_id=f"e-{i:03}", path="/" + "p" * 970) for i in range(500)]
    context = context_field("r" * 128)

    parts = encode_messages(events, RECEIVED, [context] * len(events))

    assert len(parts) == 2
    assert all(len(payload) <= MAX_MESSAGE_BYTES for payload, _ in parts)
    assert [len(decode_message(payload).request_ids) for payload, _ in parts] == [
        len(decode_message(payload).events) for payload, _ in parts
    ]


def test_a_dead_letter_of_one_event_keeps_its_request_id() -> None:
    event = Event(site_id="s", event_id="e-1", path="/")

    letter = encode_batch([event], RECEIVED, ["req-9"])

    assert decode_message(letter).request_ids == ["req-9"]


@pytest.mark.parametrize("request_id", ["", "r", "r" * 125, "r" * 126, "r" * 300, "ü" * 70])
def test_a_context_field_is_what_protobuf_writes(request_id: str) -> None:
    expected = EventBatch(contexts=[EventContext(request_id=request_id)]).SerializeToString()

    assert context_field(request_id) == expected
