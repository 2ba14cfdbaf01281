"""Registering our servicers on a gRPC server, with request decoding that cannot fail.

The generated `add_*Servicer_to_server` functions decode requests with `FromString`, and a
request that is not valid protobuf (invalid UTF-8 in a string field, say) then fails with
UNKNOWN before our code runs. Here such a request reaches the servicer as an InvalidArgument,
naming the string field that is not UTF-8 where that is the fault, which `translate_errors`
answers with INVALID_ARGUMENT; in a client stream, an undecodable element arrives in place of
the message and is rejected on its own.

Fields this server does not know (a newer contract's, or junk) are dropped on decoding, as
proto3 lets a reader do: protobuf would otherwise keep their bytes, and an event would carry
them unchecked and unbounded into the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from core.errors import InvalidArgument
from transports.wire_utf8 import invalid_utf8_field


def add_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Serve `service` with the methods of the same name on `servicer`."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        make_handler = _HANDLER_MAKERS[(method.client_streaming, method.server_streaming)]
        # A client stream of single messages rejects a bad one on its own, by the message's
        # name ("event"); any other bad request is the request as a whole.
        one_by_one = method.client_streaming and not method.server_streaming
        handlers[method.name] = make_handler(
            getattr(servicer, method.name),
            request_deserializer=tolerant_decoder(
                method.input_type,
                field=method.input_type.name.lower() if one_by_one else None,
            ),
            response_serializer=message_factory.GetMessageClass(
                method.output_type
            ).SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


# By (client_streaming, server_streaming).
_HANDLER_MAKERS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def tolerant_decoder(
    descriptor: Descriptor, field: str | None
) -> Callable[[bytes], Message | InvalidArgument]:
    """Decode bytes as the message, without the fields it does not know, or return (not
    raise) an InvalidArgument: on the string field that is not UTF-8 where that is the fault
    (named within the message, as validation names its fields), else on `field`, the
    message's name for its reader, or "request"."""
    message_class = message_factory.GetMessageClass(descriptor)

    def decode(data: bytes) -> Message | InvalidArgument:
        try:
            message = message_class.FromString(data)
        except DecodeError as error:
            reason = str(error).rpartition(": ")[2]
            not_utf8 = invalid_utf8_field(descriptor, data) if _BAD_UTF8 in reason else None
            if not_utf8 is not None:
                return InvalidArgument.single(not_utf8, "must be valid UTF-8")
            return InvalidArgument.single(
                field or "request", f"is not a valid {descriptor.full_name} message: {reason}"
            )
        message.DiscardUnknownFields()
        return message

    return decode


# How protobuf's error says that a string field is not UTF-8.
_BAD_UTF8 = "bad UTF-8"
