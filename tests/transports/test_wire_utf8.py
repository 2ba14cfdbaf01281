from __future__ import annotations

from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest, IngestRequest
from google.protobuf.message import Message

from transports.wire_utf8 import MAX_FIELDS_WALKED, invalid_utf8_field

EVENT = Event(site_id="site-123", event_type="page_view", path="/home")


def with_bytes(message: Message, placeholder: str, raw: bytes) -> bytes:
    """The message's encoding with `placeholder` (as UTF-8) replaced by as many raw bytes."""
    encoded, old = message.SerializeToString(), placeholder.encode()
    assert len(raw) == len(old)
    assert encoded.count(old) == 1
    return encoded.replace(old, raw)


def test_a_message_whose_strings_are_utf8_has_no_such_field() -> None:
    assert invalid_utf8_field(Event.DESCRIPTOR, EVENT.SerializeToString()) is None


def test_a_string_field_is_named() -> None:
    data = with_bytes(EVENT, "site-123", b"site-\xff23")

    assert invalid_utf8_field(Event.DESCRIPTOR, data) == "site_id"


def test_a_string_field_of_a_message_field_is_named_within_it() -> None:
    data = with_bytes(IngestRequest(event=EVENT), "/home", b"/h\xc3\x28e")

    assert invalid_utf8_field(IngestRequest.DESCRIPTOR, data) == "event.path"


def test_an_element_of_a_repeated_field_is_named_by_its_index() -> None:
    bad = Event(site_id="site-123", event_type="page_view", path="/bad")
    request = IngestBatchRequest(events=[EVENT, EVENT, bad])

    data = with_bytes(request, "/bad", b"/\xed\xa0\x80")  # a surrogate, in UTF-8's form

    assert invalid_utf8_field(IngestBatchRequest.DESCRIPTOR, data) == "events[2].path"


def test_a_property_value_is_named_by_its_key() -> None:
    event = Event(site_id="site-123", properties={"plan": "pro"})

    data = with_bytes(event, "pro", b"p\xfe\xff")

    assert invalid_utf8_field(Event.DESCRIPTOR, data) == "properties[plan]"


def test_a_property_key_is_named_by_the_map() -> None:
    event = Event(site_id="site-123", properties={"plan": "pro"})

    data = with_bytes(event, "plan", b"pl\x80n")

    assert invalid_utf8_field(Event.DESCRIPTOR, data) == "properties"


def test_a_property_value_under_a_key_longer_than_any_valid_one_is_named_by_the_map() -> None:
    event = Event(site_id="site-123", properties={"k" * 65: "pro"})

    data = with_bytes(event, "pro", b"p\xfe\xff")

    assert invalid_utf8_field(Event.DESCRIPTOR, data) == "properties"


def test_a_property_value_under_a_key_with_a_control_character_is_named_by_the_map() -> None:
    event = Event(site_id="site-123", properties={"a\nb": "pro"})

    data = with_bytes(event, "pro", b"p\xfe\xff")

    assert invalid_utf8_field(Event.DESCRIPTOR, data) == "properties"


def test_bytes_malformed_before_the_string_name_no_field() -> None:
    data = b"\x00\x01" + with_bytes(EVENT, "site-123", b"site-\xff23")  # a field numbered 0

    assert invalid_utf8_field(Event.DESCRIPTOR, data) is None


def test_a_string_beyond_the_fields_walked_is_not_named() -> None:
    many = IngestBatchRequest(events=[Event()] * MAX_FIELDS_WALKED).SerializeToString()
    bad = with_bytes(IngestBatchRequest(events=[EVENT]), "/home", b"/h\xffme")

    assert invalid_utf8_field(IngestBatchRequest.DESCRIPTOR, many + bad) is None


def test_a_string_after_many_decodable_elements_is_named() -> None:
    many = IngestBatchRequest(events=[EVENT] * 999).SerializeToString()
    bad = with_bytes(IngestBatchRequest(events=[EVENT]), "/home", b"/h\xffme")

    assert invalid_utf8_field(IngestBatchRequest.DESCRIPTOR, many + bad) == "events[999].path"
