"""Which string field of an encoded protobuf message holds bytes that are not UTF-8.

protobuf refuses such a message with "String field had bad UTF-8" and no field name; a client
is owed the name (`events[3].path`), so the bytes are walked again, on that failure only.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def invalid_utf8_field(descriptor: Descriptor, data: bytes) -> str | None:
    """The path of the first string field in `data` that is not UTF-8, or None if there is
    none or the bytes are not a well-formed message in other ways."""
    try:
        return _walk(descriptor, memoryview(data))
    except _Malformed:
        return None


class _Malformed(Exception):
    pass


def _walk(descriptor: Descriptor, data: memoryview) -> str | None:
    """The first field not UTF-8; the rest is walked too, to be sure it is well-formed."""
    seen: dict[int, int] = {}  # occurrences so far, by field number: a repeated field's index
    first: str | None = None
    for number, value in _fields(data):
        field = descriptor.fields_by_number.get(number)
        if value is None or field is None:
            continue
        index = seen.get(number, 0)
        seen[number] = index + 1
        problem = _field_problem(field, index, value)
        first = first or problem
    return first


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """Each field's number and, for a length-delimited one, its bytes."""
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        wire_type = tag & 7
        value = None
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
            raise _Malformed  # groups: no message of ours has them
        if position > len(data):
            raise _Malformed
        yield tag >> 3, value


def _field_problem(field: FieldDescriptor, index: int, value: memoryview) -> str | None:
    """The path within `field` (its `index`-th occurrence) that is not UTF-8, if any."""
    name = field.name
    if field.type == FieldDescriptor.TYPE_STRING:
        if _is_utf8(value):
            return None
        return f"{name}[{index}]" if field.is_repeated else name
    inner_type = field.message_type
    if inner_type is None:
        return None  # a scalar
    if inner_type.GetOptions().map_entry:
        return _map_entry_problem(name, inner_type, value)
    inner = _walk(inner_type, value)
    if inner is None:
        return None
    return f"{name}[{index}].{inner}" if field.is_repeated else f"{name}.{inner}"


def _map_entry_problem(name: str, entry: Descriptor, value: memoryview) -> str | None:
    """A bad value is named by its key (`properties[plan]`), a bad key by the map."""
    inner = _walk(entry, value)
    if inner != "value":
        return None if inner is None else name
    key_number = entry.fields_by_name["key"].number
    keys = [
        key
        for number, key in _fields(value)
        if number == key_number and key is not None and _is_utf8(key)
    ]
    return f"{name}[{bytes(keys[-1]).decode()}]" if keys else f"{name}[]"


def _is_utf8(value: memoryview) -> bool:
    try:
        bytes(value).decode()
    except UnicodeDecodeError:
        return False
    return True


def _varint(data: memoryview, position: int) -> tuple[int, int]:
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
