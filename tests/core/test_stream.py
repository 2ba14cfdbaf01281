"""The event stream's codec: what the ingest servers write and the writer reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics.internal.v1.stream_pb2 import EventContext, FilteredCount, FilteredTraffic
from analytics.v1.event_pb2 import Event

from core.stream import (
    MAX_MESSAGE_BYTES,
    UndecodableMessage,
    decode_filtered,
    decode_message,
    encode_batch,
    encode_filtered,
    encode_messages,
    message_id,
    request_context,
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
    first, second = request_context("req-1"), request_context("req-2")

    [(payload, _)] = encode_messages(events, RECEIVED, [first, first, second])

    assert decode_message(payload).request_ids == ["req-1", "req-1", "req-2"]


def test_a_request_id_and_what_a_browser_told_make_one_context() -> None:
    event = Event(site_id="s", event_id="e-1", path="/")
    derived = EventContext(browser="Firefox", visitor_id=7).SerializeToString()

    [(payload, _)] = encode_messages([event], RECEIVED, [request_context("req-1") + derived])

    assert list(decode_message(payload).contexts) == [
        EventContext(request_id="req-1", browser="Firefox", visitor_id=7)
    ]


def test_the_events_read_the_same_with_contexts_as_without() -> None:
    events = [Event(site_id="s", event_id=f"e-{i}", path="/") for i in range(3)]

    [(payload, _)] = encode_messages(events, RECEIVED, [request_context("req-1")] * 3)

    assert list(decode_message(payload).events) == events


@pytest.mark.parametrize("empty", [request_context(""), None])
def test_a_message_of_requests_that_told_nothing_carries_no_contexts(empty: bytes | None) -> None:
    event = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH).events[0]

    [(payload, _)] = encode_messages([event], RECEIVED, [empty])

    assert payload == MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH


def test_a_message_without_contexts_reads_as_events_of_no_request_id() -> None:
    message = decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH)

    assert message.request_ids == [""]


def test_contexts_count_towards_the_size_of_a_message() -> None:
    # Events of 1000 bytes: without contexts, 500 fit in one message under MAX_MESSAGE_BYTES.
    events = [Event(site_id="s", event_id=f"e-{i:03}", path="/" + "p" * 970) for i in range(500)]
    context = request_context("r" * 128)

    parts = encode_messages(events, RECEIVED, [context] * len(events))

    assert len(parts) == 2
    assert all(len(payload) <= MAX_MESSAGE_BYTES for payload, _ in parts)
    assert [len(decode_message(payload).request_ids) for payload, _ in parts] == [
        len(decode_message(payload).events) for payload, _ in parts
    ]


def test_a_dead_letter_of_one_event_keeps_its_request_id() -> None:
    event = Event(site_id="s", event_id="e-1", path="/")

    letter = encode_batch([event], RECEIVED, [EventContext(request_id="req-9")])

    assert decode_message(letter).request_ids == ["req-9"]


@pytest.mark.parametrize("request_id", ["", "r", "r" * 127, "r" * 128, "r" * 300, "ü" * 70])
def test_a_request_context_is_what_protobuf_writes(request_id: str) -> None:
    assert request_context(request_id) == EventContext(request_id=request_id).SerializeToString()


def test_a_message_of_earlier_versions_reads_as_events_without_contexts() -> None:
    assert list(decode_message(MESSAGE_WRITTEN_AS_ANALYTICS_V1_EVENT_BATCH).contexts) == []


def test_contexts_travel_parallel_to_their_events() -> None:
    events = [Event(site_id="s", event_id=str(i), path="/") for i in range(3)]
    contexts = [EventContext(browser="Firefox"), None, EventContext(country="DE")]

    [(payload, _)] = encode_messages(
        events, RECEIVED, [c.SerializeToString() if c else None for c in contexts]
    )

    message = decode_message(payload)
    assert list(message.events) == events
    assert list(message.contexts) == [
        EventContext(browser="Firefox"),
        EventContext(),
        EventContext(country="DE"),
    ]


def test_a_message_split_in_parts_keeps_each_events_context() -> None:
    events = [Event(site_id="s", event_id=str(i), path="/" + "p" * 300_000) for i in range(3)]
    contexts = [EventContext(os=str(i)).SerializeToString() for i in range(3)]

    parts = encode_messages(events, RECEIVED, contexts)

    decoded = [decode_message(payload) for payload, _ in parts]
    assert len(parts) == 3
    assert [c.os for message in decoded for c in message.contexts] == ["0", "1", "2"]


def test_a_message_with_contexts_for_some_events_only_is_undecodable() -> None:
    payload = encode_batch([Event(), Event()], RECEIVED, [EventContext()])

    with pytest.raises(UndecodableMessage, match="1 contexts for 2 events"):
        decode_message(payload)


def test_a_filtered_traffic_window_is_identified_by_its_window_id() -> None:
    window = FilteredTraffic(
        window_id="p-1",
        counts=[FilteredCount(site_id="s", day="2026-12-06", reason="bot", count=2)],
    )

    payload, msg_id = encode_filtered(window)

    assert decode_filtered(payload) == window
    assert msg_id == "filtered-p-1"
