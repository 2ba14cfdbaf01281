"""Strict JSON bodies, RFC 3339 timestamps, and errors as JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from core.errors import FieldViolation, InvalidArgument
from transports.http_app import PayloadTooLarge
from transports.http_json import error_to_json, parse_body, rfc3339_instant


def body_violations(body: bytes) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        parse_body(body)
    return list(caught.value.violations)


def test_malformed_json_is_refused_with_its_position() -> None:
    assert body_violations(b'{"site_id": }') == [
        FieldViolation("body", "is not valid JSON: Expecting value at line 1 column 13")
    ]


def test_an_integer_too_long_to_convert_is_refused() -> None:
    assert body_violations(b'{"x": ' + b"9" * 5000 + b"}") == [
        FieldViolation("body", "holds a number too long to read")
    ]


def test_a_body_that_is_not_utf8_is_refused() -> None:
    assert body_violations('{"path": "/é"}'.encode("latin-1")) == [
        FieldViolation("body", "is not valid UTF-8")
    ]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_refused(constant: bytes) -> None:
    assert body_violations(b'{"x": ' + constant + b"}") == [
        FieldViolation("body", f"{constant.decode()} is not a JSON value")
    ]


def test_deeply_nested_json_is_refused() -> None:
    assert body_violations(b"[" * 100_000 + b"]" * 100_000) == [
        FieldViolation("body", "is nested too deeply")
    ]


def test_an_invalid_argument_error_lists_its_violations() -> None:
    error = InvalidArgument([FieldViolation("site_id", "is required")])

    assert error_to_json(error) == {
        "error": "invalid_argument",
        "message": "site_id: is required",
        "field_violations": [{"field": "site_id", "description": "is required"}],
    }


def test_other_errors_have_a_code_and_a_message() -> None:
    assert error_to_json(PayloadTooLarge("too big")) == {
        "error": "payload_too_large",
        "message": "too big",
    }


def _instant_by_datetime(text: str) -> tuple[int, int]:
    """What datetime and protobuf make of an RFC 3339 text: the oracle for rfc3339_instant."""
    parsed = datetime.fromisoformat(text.replace("z", "Z"))
    timestamp = Timestamp()
    timestamp.FromDatetime(parsed)
    return timestamp.seconds, timestamp.nanos


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    moment=st.datetimes(timezones=_OFFSETS),
    digits=st.integers(min_value=0, max_value=9),
    zulu=st.sampled_from(["Z", "z", None]),
    separator=st.sampled_from("Tt "),
)
def test_a_timestamp_is_the_instant_datetime_and_protobuf_give_it(
    moment: datetime, digits: int, zulu: str | None, separator: str
) -> None:
    if zulu is not None:
        moment = moment.replace(tzinfo=UTC)
    m = moment
    fraction = f".{m.microsecond:06d}777"[: digits + 1] if digits else ""
    offset = zulu or f"{m:%z}"[:3] + ":" + f"{m:%z}"[3:]
    text = f"{m.year:04d}-{m:%m-%d}{separator}{m:%H:%M:%S}{fraction}{offset}"
    try:
        expected = _instant_by_datetime(text.replace(separator, "T", 1))
    except (ValueError, OverflowError):  # no instant: the offset moves it out of years 1-9999
        with pytest.raises(ValueError, match="no instant"):
            rfc3339_instant(text)
    else:
        assert rfc3339_instant(text) == expected
