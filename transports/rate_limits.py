"""A rate limit per caller at both doors of a service (the report service's): a route wrapper
for HTTP, an interceptor for gRPC, both counting against the same buckets (core.rate_limits).

A caller is the credential it presents (the `authorization` header or metadata, whatever scheme
it names), kept only as a digest, or, presenting none, its client IP (transports.client_ip). So
the limit follows a token wherever its requests come from, and needs nothing from whatever
checks the token: a wrong token is counted as any other.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import grpc

from core.errors import RateLimited
from core.rate_limits import TokenBuckets, admit
from transports.client_ip import TrustedProxies, client_ip, grpc_peer_ip
from transports.grpc_errors import Context, abort
from transports.grpc_interceptors import Handler as GrpcHandler
from transports.grpc_interceptors import rewrapped
from transports.http_app import Handler, Reply, Request, Routes

CREDENTIAL = "credential:"


def caller_subject(key: str) -> str:
    """What a refusal calls a caller: its IP, or not its credential."""
    return "the credential presented" if key.startswith(CREDENTIAL) else key


class CallerLimit:
    """`buckets`: made with `subject=caller_subject`."""

    def __init__(self, buckets: TokenBuckets, trusted_proxies: TrustedProxies) -> None:
        self._buckets = buckets
        self._trusted = trusted_proxies

    def _admit(self, authorization: str | bytes | None, ip: str) -> None:
        if authorization:
            credential = (
                authorization if isinstance(authorization, bytes) else authorization.encode()
            )
            key = CREDENTIAL + hashlib.blake2b(credential, digest_size=16).hexdigest()
        else:
            key = "ip:" + ip
        admit(((self._buckets, key, 1),))

    def check_http(self, request: Request) -> None:
        headers = request.headers
        ip = client_ip(request.client, headers.get(b"x-forwarded-for"), self._trusted)
        self._admit(headers.get(b"authorization"), ip)

    def check_grpc(self, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        forwarded = metadata.get("x-forwarded-for")
        ip = client_ip(
            grpc_peer_ip(context.peer()),
            forwarded.encode("latin-1") if isinstance(forwarded, str) else forwarded,
            self._trusted,
        )
        self._admit(metadata.get("authorization"), ip)

    def routes(self, routes: Routes) -> Routes:
        """The routes, each request counted before its handler runs."""
        return {
            path: {method: self._limited(handler) for method, handler in methods.items()}
            for path, methods in routes.items()
        }

    def _limited(self, handler: Handler) -> Handler:
        async def limited(request: Request) -> Reply:
            self.check_http(request)
            return await handler(request)

        return limited

    def interceptor(self, services: Collection[str]) -> grpc.aio.ServerInterceptor:
        """An interceptor counting each call of the named services (full names); it lets the
        calls of other services in the same server pass."""
        return _CallerInterceptor(self, frozenset(services))


class _CallerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limit: CallerLimit, services: frozenset[str]) -> None:
        self._limit = limit
        self._services = services
        # Each method's handler as the server has it, and as wrapped here: wrapped once.
        self._wrapped: dict[str, tuple[GrpcHandler, GrpcHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[GrpcHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> GrpcHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.lstrip("/").partition("/")[0] not in self._services:
            return handler
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._wrap(handler))
        return known[1]

    def _wrap(self, handler: GrpcHandler) -> GrpcHandler:
        check = self._limit.check_grpc
        behavior: Any = (
            handler.unary_unary
            or handler.stream_unary
            or handler.unary_stream
            or handler.stream_stream
        )

        async def answer(request: Any, context: Context) -> Any:
            try:
                check(context)
            except RateLimited as error:
                await abort(context, error)
            return await behavior(request, context)

        async def answer_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                check(context)
            except RateLimited as error:
                await abort(context, error)
            async for response in behavior(request, context):
                yield response

        return rewrapped(handler, answer_stream if inspect.isasyncgenfunction(behavior) else answer)
