"""What every gRPC call passes through, whatever its service: its request id (the client's
`x-request-id` metadata when sane, else a new one), set for the call's log lines and events and
returned in its trailing metadata, and, optionally, an observer told of the call's method, status
and duration.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from typing import Any, TypeAlias

import grpc

from core.request_ids import REQUEST_ID, request_id_from

# Told of each finished call: its method (`/package.Service/Method`), its status code's name
# (`OK`, `INVALID_ARGUMENT`, ...) and its duration in seconds.
CallObserver = Callable[[str, str, float], None]

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # not subscriptable at run time
_REQUEST_ID_KEY = "x-request-id"


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, observe: CallObserver | None = None) -> None:
        self._observe = observe
        # Each method's handler as the server has it, and as wrapped here: wrapped once.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # not served: grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._wrap(method, handler))
        return known[1]

    def _wrap(self, method: str, handler: Handler) -> Handler:
        observe = self._observe
        behavior: Any = (
            handler.unary_unary
            or handler.stream_unary
            or handler.unary_stream
            or handler.stream_stream
        )

        def finish(context: Context, started: float, failure: BaseException | None) -> None:
            if observe is None:
                return
            code = context.code()
            if code is None:  # nothing set it: the call ended as it ended
                code = grpc.StatusCode.OK if failure is None else _failure_code(failure)
            observe(method, code.name, perf_counter() - started)

        async def answer(request: Any, context: Context) -> Any:
            started = _begin(context)
            try:
                response = await behavior(request, context)
            except BaseException as failure:
                finish(context, started, failure)
                raise
            finish(context, started, None)
            return response

        async def answer_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            started = _begin(context)
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as failure:
                finish(context, started, failure)
                raise
            finish(context, started, None)

        # A method answering with a stream yields its answers, or writes them (context.write)
        # and returns, as grpc's health service does.
        return rewrapped(handler, answer_stream if inspect.isasyncgenfunction(behavior) else answer)


def _begin(context: Context) -> float:
    """Set the call's request id (this call runs in a task of its own) and return it to the
    client in the trailing metadata; the time the call started."""
    given = next(
        (value for key, value in context.invocation_metadata() or () if key == _REQUEST_ID_KEY),
        None,
    )
    request_id = request_id_from(given)
    REQUEST_ID.set(request_id)
    context.set_trailing_metadata(((_REQUEST_ID_KEY, request_id),))
    return perf_counter()


def _failure_code(failure: BaseException) -> grpc.StatusCode:
    """The status of a call whose method raised `failure` without setting one."""
    if isinstance(failure, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def rewrapped(handler: Handler, behavior: Callable[..., Any]) -> Handler:
    """`handler` with `behavior` in place of its own: the same kind of call (unary or streaming
    each way) and the same (de)serializers, for interceptors that wrap a method."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    made: Handler = make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return made
