"""The HTTP door's plumbing, for whatever routes a service hands it: a plain ASGI application
that routes by path and method, reads bodies within bounds, answers in JSON, and maps our
errors to HTTP statuses in one table. It knows no route of its own and no business rule.
Each request gets its id (core.request_ids), answered in `X-Request-Id`, and an observer, if
given, hears of each request answered (runtime.metrics counts and times them).

It is a plain ASGI application rather than a framework's: a handful of routes need no router,
and a framework's request, response and middleware objects cost more CPU than the rest of
`POST /event` together (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl

from core.errors import FieldViolation, InvalidArgument, ServiceError, Unavailable
from core.request_ids import REQUEST_ID, request_id_from
from transports.cors import Cors
from transports.http_json import encodes_as_utf8, error_to_json, parse_body

# ASGI's three callables, as uvicorn calls an application.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

logger = logging.getLogger(__name__)
# One encoder for every answer: `json.dumps` with options builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"


class RequestTimeout(ServiceError):
    """The client did not send its whole request in time (the HTTP protocol answers it, see
    transports.http_bounds)."""

    code = "request_timeout"


# The one table from our error codes to HTTP statuses.
HTTP_STATUS: Mapping[str, HTTPStatus] = {
    "invalid_argument": HTTPStatus.BAD_REQUEST,
    "request_timeout": HTTPStatus.REQUEST_TIMEOUT,
    "not_found": HTTPStatus.NOT_FOUND,
    "already_exists": HTTPStatus.CONFLICT,
    "unauthenticated": HTTPStatus.UNAUTHORIZED,
    "permission_denied": HTTPStatus.FORBIDDEN,
    "payload_too_large": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "unsupported_media_type": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "resource_exhausted": HTTPStatus.TOO_MANY_REQUESTS,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "internal": HTTPStatus.INTERNAL_SERVER_ERROR,
}
# What a 401 answers with (RFC 6750): the scheme the server expects.
_BEARER_CHALLENGE = (b"www-authenticate", b'Bearer realm="analytics"')
# The header of an answer after which the server closes the connection.
_CLOSE = (b"connection", b"close")


# Plain slotted dataclasses: a frozen one costs several times as much to make, per request.
@dataclass(slots=True)
class Request:
    """What a route handler gets of an HTTP request."""

    method: str
    path: str
    headers: dict[bytes, bytes]
    query_string: bytes
    receive: Receive
    # The values of the route's `{name}` segments, by name.
    path_params: dict[str, str] = field(default_factory=dict)
    # The route the request matched, as declared (`/sites/{site_id}`); "" if none.
    route: str = ""
    # The address of the connection's peer ("" when the server does not know it).
    client: str = ""


@dataclass(slots=True)
class Reply:
    """A JSON answer (no body when `body` is None), bytes sent as they are, or, with `stream`,
    a body sent as it is made (Server-Sent Events, an export): each chunk as the iterator gives
    it, the response ending with it or when the client goes away. Bytes and a stream name
    their own content type in `headers`."""

    status: int
    body: Any
    headers: Headers = ()
    stream: AsyncGenerator[bytes, None] | None = None


Handler = Callable[[Request], Awaitable[Reply]]
# Told of each answered request: its route ("" if it matched none), method, status, and the
# seconds from its head's arrival to its answer's sending.
Observer = Callable[[str, str, int, float], None]
# Path → method → handler. A path segment `{name}` matches any one segment, its value in the
# request's path_params.
Routes = Mapping[str, Mapping[str, Handler]]


def create_app(routes: Routes, cors: Cors, observe: Observer | None = None) -> ASGIApp:
    """An ASGI application serving `routes`, telling `observe` of each request answered."""
    return _App(routes, cors, observe)


def create_busy_app(cors: Cors) -> ASGIApp:
    """An ASGI application answering every request 503 (with Retry-After) and closing its
    connection: what serves a connection over the server's bound (transports.http_bounds)."""
    return _Busy({}, cors)


class _App:
    def __init__(self, routes: Routes, cors: Cors, observe: Observer | None = None) -> None:
        self._routes = {path: methods for path, methods in routes.items() if "{" not in path}
        # (route, segments, methods) of the routes with parameters, tried in turn.
        self._patterns = [
            (path, path.strip("/").split("/"), methods)
            for path, methods in routes.items()
            if "{" in path
        ]
        self._cors = cors
        self._observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is served
        started = perf_counter() if self._observe is not None else 0.0
        client = scope.get("client")
        request = Request(
            scope["method"],
            scope["path"],
            dict(scope["headers"]),
            scope["query_string"],
            receive,
            client=client[0] if client else "",
        )
        # uvicorn serves each request in a task of its own: the id is this request's alone.
        request_id = request_id_from(request.headers.get(b"x-request-id"))
        REQUEST_ID.set(request_id)
        try:
            reply = await self._route(request)
        except ServiceError as error:
            reply = error_reply(error)
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            reply = Reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal", "message": "internal error"}
            )
        headers = (*reply.headers, (b"x-request-id", request_id.encode()))
        origin = request.headers.get(b"origin")
        if origin is not None:
            credentialed = b"authorization" in request.headers
            headers += self._cors.headers_for(origin, credentialed=credentialed)
        if reply.stream is None:
            await _send_json(send, Reply(reply.status, reply.body, headers))
        else:
            await _send_stream(send, receive, reply.status, headers, reply.stream)
        if self._observe is not None:
            self._observe(request.route, request.method, reply.status, perf_counter() - started)

    async def _route(self, request: Request) -> Reply:
        methods = self._routes.get(request.path)
        if methods is not None:
            request.route = request.path
        else:
            methods = self._match(request)
        if methods is None:
            return _http_error(request, HTTPStatus.NOT_FOUND)
        handler = methods.get(request.method)
        if handler is not None:
            return await handler(request)
        if request.method == "OPTIONS" and b"access-control-request-method" in request.headers:
            preflight = self._cors.preflight(request.headers, tuple(methods))
            return Reply(preflight.status, preflight.body, preflight.headers)
        allow = ", ".join(methods).encode()
        return _http_error(request, HTTPStatus.METHOD_NOT_ALLOWED, ((b"allow", allow),))

    def _match(self, request: Request) -> Mapping[str, Handler] | None:
        """The methods of the first route with parameters the path matches, which fills the
        request's path_params."""
        segments = request.path.strip("/").split("/")
        for route, pattern, methods in self._patterns:
            if len(pattern) != len(segments):
                continue
            params = {}
            for expected, given in zip(pattern, segments, strict=True):
                if expected.startswith("{"):
                    params[expected.strip("{}")] = given
                elif expected != given:
                    break
            else:
                if all(params.values()):
                    request.path_params = params
                    request.route = route
                    return methods
        return None


class _Busy(_App):
    async def _route(self, request: Request) -> Reply:
        reply = error_reply(Unavailable("the server is serving all the connections it may; retry"))
        return Reply(reply.status, reply.body, (*reply.headers, _CLOSE))


def error_reply(error: ServiceError) -> Reply:
    """The answer to a request that failed with `error`."""
    headers: Headers = (
        () if error.retry_after is None else ((b"retry-after", b"%d" % error.retry_after),)
    )
    if error.code == "unauthenticated":
        headers += (_BEARER_CHALLENGE,)
    return Reply(HTTP_STATUS[error.code], error_to_json(error), headers)


async def json_body(request: Request, max_bytes: int, *, text_plain: bool = False) -> Any:
    """The request's body, which must be JSON (UTF-8) of at most `max_bytes` bytes, decoded.
    With `text_plain`, a `text/plain` body is read as JSON too: what `sendBeacon` and a
    `fetch` of a string send, the one type a page may send elsewhere without a preflight."""
    content_type = request.headers.get(b"content-type", b"").decode("latin-1")
    media_type, _, parameters = content_type.partition(";")
    charset = parameters.strip().lower().removeprefix("charset=").strip('"')
    media_type = media_type.strip().lower()
    if (
        media_type != "application/json" and not (text_plain and media_type == "text/plain")
    ) or charset not in ("", "utf-8"):
        wanted = "application/json or text/plain" if text_plain else "application/json"
        raise UnsupportedMediaType(f"Content-Type must be {wanted} (UTF-8)")
    return parse_body(await read_body(request, max_bytes))


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body; PayloadTooLarge as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    # Joined once at the end: adding each chunk to the bytes so far would copy them again for
    # every chunk, quadratic in a body that a client trickles in small pieces.
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] != "http.request":
            raise InvalidArgument.single("body", "the client went away before sending it")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if size > max_bytes:
            raise _too_large(max_bytes)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body must be at most {max_bytes} bytes")


def query_parameters(
    request: Request, known: tuple[str, ...]
) -> tuple[dict[str, str], list[FieldViolation]]:
    """The query string's parameters by name, and a violation for each parameter that is
    unknown, repeated, or not UTF-8 once percent-decoded (the caller adds its own and raises
    them together)."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    violations: list[FieldViolation] = []
    # Percent-encoded bytes that are not UTF-8 become lone surrogates here, so that the
    # parameter holding them is refused by name rather than read with U+FFFD in it.
    query = parse_qsl(
        request.query_string.decode(errors="surrogateescape"),
        keep_blank_values=True,
        errors="surrogateescape",
    )
    for name, value in query:
        if name not in known:
            shown = name.encode(errors="surrogateescape").decode(errors="replace")
            violations.append(FieldViolation(shown[:64], "is not a known parameter"))
        elif name in seen:
            violations.append(FieldViolation(name, "appears more than once"))
        elif encodes_as_utf8(value):
            params[name] = value
        else:
            # Not kept, not to be judged again as the text it is not.
            violations.append(FieldViolation(name, "must be valid UTF-8"))
        seen.add(name)
    return params, violations


def _http_error(request: Request, status: HTTPStatus, headers: Headers = ()) -> Reply:
    code = status.phrase.lower().replace(" ", "_")
    message = f"{request.method} {request.path}: {status.phrase}"
    return Reply(status, {"error": code, "message": message}, headers)


def closing_response(error: ServiceError) -> bytes:
    """The whole HTTP/1.1 answer to a request that failed with `error`, closing the
    connection: for the HTTP protocol to write itself, where no application call can answer."""
    reply = error_reply(error)
    headers, body = _encoded(Reply(reply.status, reply.body, (*reply.headers, _CLOSE)))
    status = HTTPStatus(reply.status)
    head = b"".join(b"%s: %s\r\n" % header for header in headers)
    return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, status.phrase.encode(), head, body)


async def _send_json(send: Send, reply: Reply) -> None:
    headers, body = _encoded(reply)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_stream(
    send: Send, receive: Receive, status: int, headers: Headers, chunks: AsyncGenerator[bytes, None]
) -> None:
    """Send each chunk as it comes, until the iterator ends or the client disconnects (then
    the iterator is closed at once, even while it waits for its next chunk)."""
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    disconnected = asyncio.create_task(_disconnect(receive))
    try:
        while True:
            chunk = asyncio.ensure_future(anext(chunks))
            await asyncio.wait({chunk, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if not chunk.done():
                # Let the iterator finish being cancelled before it is closed: closing a
                # generator that is still running fails.
                chunk.cancel()
                await asyncio.wait({chunk})
                return
            try:
                body = chunk.result()
            except StopAsyncIteration:
                break
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        disconnected.cancel()
        await chunks.aclose()


async def _disconnect(receive: Receive) -> None:
    """Return when the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _encoded(reply: Reply) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The reply's headers and body as they go on the wire."""
    if reply.body is None:
        return list(reply.headers), b""
    if isinstance(reply.body, bytes):
        return [(b"content-length", b"%d" % len(reply.body)), *reply.headers], reply.body
    body = _JSON_ENCODER.encode(reply.body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        *reply.headers,
    ]
    return headers, body
