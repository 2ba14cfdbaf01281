"""How a ServiceError reaches a gRPC client: its status code and, in the standard
`grpc-status-details-bin` trailer (written by grpcio-status), a google.rpc.BadRequest naming the
fields at fault, a google.rpc.QuotaFailure naming the rate limit that refused the call, and a
google.rpc.RetryInfo when a retry may succeed."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.errors import InvalidArgument, RateLimited, ServiceError

# gRPC refuses trailers over 8 KiB now and then and over 16 KiB always, and the message goes
# in them twice: percent-encoded in grpc-message (up to three bytes per byte) and in the
# details. A longer message is cut; the BadRequest detail still names every field at fault.
MAX_MESSAGE_BYTES = 512

Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


def grpc_code(error: ServiceError) -> int:
    """The google.rpc.Code of the error: the one table from our error codes to gRPC's."""
    return int(code_pb2.Code.Value(error.code.upper()))


def rich_status(error: ServiceError) -> status_pb2.Status:
    """The google.rpc.Status a client can decode from the details trailer."""
    status = status_pb2.Status(code=grpc_code(error), message=status_message(error))
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        status.details.append(_packed(bad_request))
    if isinstance(error, RateLimited):
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=error.subject, description=f"rate limit {error.limit}"
                )
            ]
        )
        status.details.append(_packed(quota))
    if error.retry_after is not None:
        retry_info = error_details_pb2.RetryInfo()
        retry_info.retry_delay.seconds = error.retry_after
        status.details.append(_packed(retry_info))
    return status


def status_message(error: ServiceError) -> str:
    """The error's message, cut to MAX_MESSAGE_BYTES of UTF-8 where it is longer."""
    encoded = error.message.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return error.message
    cut = MAX_MESSAGE_BYTES - len("…".encode())
    return encoded[:cut].decode(errors="ignore") + "…"


def _packed(message: Message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


async def abort(context: Context, error: ServiceError) -> NoReturn:
    status = rpc_status.to_status(rich_status(error))
    # Aborting replaces the trailing metadata set so far (the request id): keep it.
    trailing = (*status.trailing_metadata, *(context.trailing_metadata() or ()))
    await context.abort(status.code, status.details, trailing)
    raise AssertionError("context.abort returned")  # it always raises


def translate_errors(
    method: Callable[[S, R, Context], Awaitable[T]],
) -> Callable[[S, R, Context], Awaitable[T]]:
    """Let a servicer method raise ServiceError and have the client see the mapped status."""

    @functools.wraps(method)
    async def wrapper(self: S, request: R, context: Context) -> T:
        try:
            if isinstance(request, InvalidArgument):  # undecodable: see transports.grpc_decoding
                raise request
            return await method(self, request, context)
        except ServiceError as error:
            await abort(context, error)

    return wrapper


def translate_stream_errors(
    method: Callable[[S, R, Context], AsyncIterator[T]],
) -> Callable[[S, R, Context], AsyncIterator[T]]:
    """translate_errors for a method that answers with a stream: what it yielded before the
    error reaches the client, then the mapped status ends the stream."""

    @functools.wraps(method)
    async def wrapper(self: S, requests: R, context: Context) -> AsyncIterator[T]:
        try:
            if isinstance(requests, InvalidArgument):  # an undecodable single request
                raise requests
            async for response in method(self, requests, context):
                yield response
        except ServiceError as error:
            await abort(context, error)

    return wrapper
