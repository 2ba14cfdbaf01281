from google.rpc import error_details_pb2

from core.errors import InvalidArgument, Unavailable
from transports.grpc_errors import MAX_MESSAGE_BYTES, rich_status, status_message


def test_a_short_message_is_sent_whole() -> None:
    assert status_message(Unavailable("the event stream is unreachable")) == (
        "the event stream is unreachable"
    )


def test_a_long_message_is_cut_before_the_character_that_would_pass_the_limit() -> None:
    error = InvalidArgument.single("properties[x]", "界" * 400)  # 15 bytes, then 3 each

    message = status_message(error)

    assert message == "properties[x]: " + "界" * 164 + "…"
    assert len(message.encode()) == MAX_MESSAGE_BYTES - 2


def test_the_details_of_a_long_message_keep_every_violation_whole() -> None:
    error = InvalidArgument.single("path", "x" * 1000)

    status = rich_status(error)

    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert len(status.message.encode()) == MAX_MESSAGE_BYTES
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("path", "x" * 1000)
    ]
