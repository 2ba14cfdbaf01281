"""Which string field of an encoded protobuf message holds bytes that are not UTF-8.

protobuf refuses such a message with "String field had bad UTF-8" and no field name; a client
is owed the name (`events[3].path`), so the bytes are walked again, on that failure only. The
walk is Python on the event loop: an element protobuf decodes by itself is skipped whole,
and the walk gives up (no name) after MAX_FIELDS_WALKED fields, so that no request, however
many small fields it packs, holds the loop for long.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from core.events import LIMITS

# About 2 µs each: a few tens of milliseconds at most.
MAX_FIELDS_WALKED = 20_000
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_MAX_FIELD_NUMBER = (1 << 29) - 1


def invalid_utf8_field(descriptor: Descriptor, data: bytes) -> str | None:
    """The path of the first string field, in the order protobuf reads them, that is not
    UTF-8; None if there is none, if the bytes are malformed before it, or if it lies beyond
    MAX_FIELDS_WALKED fields."""
    try:
        return _Walk().message(descriptor, memoryview(data))
    except _Malformed:
        return None


class _Malformed(Exception):
    """Not a message protobuf reads, or not worth walking further."""


class _Walk:
    def __init__(self) -> None:
        self._fields_left = MAX_FIELDS_WALKED

    def message(self, descriptor: Descriptor, data: memoryview) -> str | None:
        seen: dict[int, int] = {}  # occurrences so far, by field number: a repeated field's index
        for number, value in self._fields(data):
            field = descriptor.fields_by_number.get(number)
            if value is None or field is None:
                continue
            index = seen.get(number, 0)
            seen[number] = index + 1
            if problem := self._field_problem(field, index, value):
                return problem
        return None

    def _fields(self, data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
        """Each field's number and, for a length-delimited one, its bytes."""
        position = 0
        while position < len(data):
            self._fields_left -= 1
            if self._fields_left < 0:
                raise _Malformed
            tag, position = _varint(data, position)
            number, wire_type = tag >> 3, tag & 7
            value = None
            if not 0 < number <= _MAX_FIELD_NUMBER:
                raise _Malformed
            if wire_type == _VARINT:
                _, position = _varint(data, position)
            elif wire_type == _FIXED64:
                position += 8
            elif wire_type == _FIXED32:
                position += 4
            elif wire_type == _LENGTH_DELIMITED:
                size, position = _varint(data, position)
                value = data[position : position + size]
                position += size
            else:
                # Groups: none of our messages has one; protobuf would skip an unknown one,
                # and a request holding it gets the error that names no field.
                raise _Malformed
            if position > len(data):
                raise _Malformed
            yield number, value

    def _field_problem(self, field: FieldDescriptor, index: int, value: memoryview) -> str | None:
        """The path within `field` (its `index`-th occurrence) that is not UTF-8, if any."""
        name = field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            indexed = f"{name}[{index}]" if field.is_repeated else name
            return None if _is_utf8(value) else indexed
        inner_type = field.message_type
        if inner_type is None:
            return None  # a scalar
        if inner_type.GetOptions().map_entry:
            return self._map_entry_problem(name, inner_type, value)
        inner = None if _decodes(inner_type, value) else self.message(inner_type, value)
        if inner is None:
            return None
        return f"{name}[{index}].{inner}" if field.is_repeated else f"{name}.{inner}"

    def _map_entry_problem(self, name: str, entry: Descriptor, value: memoryview) -> str | None:
        """A bad value is named by its key (`properties[plan]`) where the key could be a valid
        one (short and printable), which bounds the name and keeps it to one clean line;
        anything else by the map."""
        inner = self.message(entry, value)
        if inner != "value":
            return None if inner is None else name
        key_number = entry.fields_by_name["key"].number
        keys = [
            key
            for number, key in self._fields(value)
            if number == key_number and key is not None and _is_utf8(key)
        ]
        key = bytes(keys[-1]).decode() if keys else ""
        if len(key) > LIMITS.max_property_key_length or not key.isprintable():
            return name
        return f"{name}[{key}]"


def _decodes(descriptor: Descriptor, value: memoryview) -> bool:
    """Whether protobuf reads the bytes as the message: much faster than walking them."""
    try:
        message_factory.GetMessageClass(descriptor).FromString(bytes(value))
    except DecodeError:
        return False
    return True


def _is_utf8(value: memoryview) -> bool:
    """Whether the bytes decode as UTF-8, which protobuf requires of a string field."""
    try:
        bytes(value).decode()
    except UnicodeDecodeError:
        return False
    return True


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Malformed
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
