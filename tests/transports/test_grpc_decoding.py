from __future__ import annotations

from analytics.v1.event_pb2 import Event

from core.errors import InvalidArgument
from transports.grpc_decoding import tolerant_decoder

EVENT = Event(site_id="site-123", event_type="page_view", path="/home")
# Field 111, length-delimited, holding b"junk": a field no version of the contract defines.
UNKNOWN_FIELD = b"\xfa\x06\x04junk"


def test_a_field_the_contract_does_not_define_is_dropped_when_decoding() -> None:
    decode = tolerant_decoder(Event.DESCRIPTOR, field="event")

    decoded = decode(EVENT.SerializeToString() + UNKNOWN_FIELD)

    assert isinstance(decoded, Event)
    assert decoded.SerializeToString() == EVENT.SerializeToString()


def test_a_string_that_is_not_utf8_becomes_an_invalid_argument_naming_it_in_the_message() -> None:
    decode = tolerant_decoder(Event.DESCRIPTOR, field="event")

    decoded = decode(b"\x12\x01\xff")  # site_id: b"\xff"

    assert isinstance(decoded, InvalidArgument)
    assert [(v.field, v.description) for v in decoded.violations] == [
        ("site_id", "must be valid UTF-8")
    ]


def test_other_undecodable_bytes_become_an_invalid_argument_on_the_field_given() -> None:
    decode = tolerant_decoder(Event.DESCRIPTOR, field="event")

    decoded = decode(b"\x12\x05ab")  # site_id of 5 bytes, 2 sent

    assert isinstance(decoded, InvalidArgument)
    assert [(v.field, v.description) for v in decoded.violations] == [
        ("event", "is not a valid analytics.v1.Event message: Wire format was corrupt")
    ]


def test_undecodable_bytes_of_a_whole_request_are_the_request_at_fault() -> None:
    decode = tolerant_decoder(Event.DESCRIPTOR, field=None)

    decoded = decode(b"\x12\x05ab")

    assert isinstance(decoded, InvalidArgument)
    assert [(v.field, v.description) for v in decoded.violations] == [
        ("request", "is not a valid analytics.v1.Event message: Wire format was corrupt")
    ]


def test_bytes_malformed_before_a_string_that_is_not_utf8_are_blamed_as_malformed() -> None:
    decode = tolerant_decoder(Event.DESCRIPTOR, field="event")

    decoded = decode(b"\x00\x01\x12\x01\xff")  # a field numbered 0, then site_id: b"\xff"

    assert isinstance(decoded, InvalidArgument)
    assert [(v.field, v.description) for v in decoded.violations] == [
        ("event", "is not a valid analytics.v1.Event message: Wire format was corrupt")
    ]
