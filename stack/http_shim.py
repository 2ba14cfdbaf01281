"""The HTTP shim for browsers and curl: `POST /event`, `POST /events`, `GET /stats`.

It holds no rules of its own: it reads and checks the HTTP envelope (content type, body size,
query string), decodes JSON into the messages the gRPC servicers receive, and calls the same
Ingestor and StatsReader they call. Every error body is JSON naming the field at fault.

It is a plain ASGI application rather than a framework's: three routes need no router, and
a framework's request, response and middleware objects cost more CPU than the rest of
`POST /event` together (docs/benchmarks.md).

CORS: a request whose `Origin` is in CORS_ALLOW_ORIGINS (or any, with `*`) gets
`Access-Control-Allow-Origin`; a preflight (`OPTIONS` with `Access-Control-Request-Method`)
is answered 204 with the methods and the `Content-Type` header allowed, or 403 for another
origin. No credentials are involved: the shim reads no cookies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from ingest_server.ingestor import Ingestor
from report_server.stats import MAX_LIMIT, StatsQuery, StatsReader
from stack.errors import (
    FieldViolation,
    InvalidArgument,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from stack.http_json import (
    encodes_as_utf8,
    error_to_json,
    event_from_json,
    events_from_json,
    outcome_to_json,
    parse_body,
    stats_to_json,
)

STATS_PARAMETERS = ("site_id", "date", "start_date", "end_date", "event_type", "limit")
PREFLIGHT_MAX_AGE = 86400  # seconds a browser may cache a preflight's answer

# ASGI's three callables, as uvicorn calls an application.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

logger = logging.getLogger(__name__)
# One encoder for every answer: `json.dumps` with options builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


# Plain slotted dataclasses: a frozen one costs several times as much to make, per request.
@dataclass(slots=True)
class Request:
    """What a route handler gets of an HTTP request."""

    method: str
    path: str
    headers: dict[bytes, bytes]
    query_string: bytes
    receive: Receive


@dataclass(slots=True)
class Reply:
    """A JSON answer."""

    status: int
    body: Any
    headers: Headers = ()


Handler = Callable[[Request], Awaitable[Reply]]


def create_app(
    *,
    ingestor: Ingestor | None,
    stats: StatsReader | None,
    max_body_bytes: int,
    cors_allow_origins: Sequence[str],
) -> ASGIApp:
    """The shim for whichever services this process runs (ingest, report or both)."""
    routes: dict[str, dict[str, Handler]] = {}
    if ingestor is not None:
        ingest = _IngestRoutes(ingestor, max_body_bytes)
        routes["/event"] = {"POST": ingest.post_event}
        routes["/events"] = {"POST": ingest.post_events}
    if stats is not None:
        routes["/stats"] = {"GET": _StatsRoutes(stats).get_stats}
    return _Shim(routes, _Cors(cors_allow_origins))


class _Shim:
    def __init__(self, routes: dict[str, dict[str, Handler]], cors: _Cors) -> None:
        self._routes = routes
        self._cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is served
        request = Request(
            scope["method"], scope["path"], dict(scope["headers"]), scope["query_string"], receive
        )
        try:
            reply = await self._route(request)
        except ServiceError as error:
            reply = Reply(error.http_status, error_to_json(error), _retry_after(error))
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            reply = Reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal", "message": "internal error"}
            )
        origin = request.headers.get(b"origin")
        if origin is not None:
            reply = Reply(reply.status, reply.body, reply.headers + self._cors.headers_for(origin))
        await _send_json(send, reply)

    async def _route(self, request: Request) -> Reply:
        methods = self._routes.get(request.path)
        if methods is None:
            return _http_error(request, HTTPStatus.NOT_FOUND)
        handler = methods.get(request.method)
        if handler is not None:
            return await handler(request)
        if request.method == "OPTIONS" and b"access-control-request-method" in request.headers:
            return self._cors.preflight(request, methods)
        allow = ", ".join(methods).encode()
        return _http_error(request, HTTPStatus.METHOD_NOT_ALLOWED, ((b"allow", allow),))


class _Cors:
    def __init__(self, allow_origins: Sequence[str]) -> None:
        self._any = "*" in allow_origins
        self._origins = frozenset(origin.encode() for origin in allow_origins)

    def allows(self, origin: bytes) -> bool:
        return self._any or origin in self._origins

    def headers_for(self, origin: bytes) -> Headers:
        """What an answer to a request from `origin` adds, so the browser lets the page read it."""
        if self._any:
            return ((b"access-control-allow-origin", b"*"),)
        if origin in self._origins:
            return ((b"access-control-allow-origin", origin), (b"vary", b"Origin"))
        return ((b"vary", b"Origin"),)

    def preflight(self, request: Request, methods: dict[str, Handler]) -> Reply:
        """Answer a browser asking whether it may send a request of another origin."""
        origin = request.headers.get(b"origin", b"")
        method = request.headers[b"access-control-request-method"].decode("latin-1")
        if not self.allows(origin):
            return _cors_refusal("origin", "is not among CORS_ALLOW_ORIGINS")
        if method not in methods:
            return _cors_refusal("Access-Control-Request-Method", f"{method} is not allowed here")
        requested = request.headers.get(b"access-control-request-headers", b"").decode("latin-1")
        if any(name.strip().lower() not in ("", "content-type") for name in requested.split(",")):
            return _cors_refusal("Access-Control-Request-Headers", "only Content-Type is allowed")
        return Reply(
            HTTPStatus.NO_CONTENT,
            None,
            (
                (b"access-control-allow-methods", ", ".join(methods).encode()),
                (b"access-control-allow-headers", b"Content-Type"),
                (b"access-control-max-age", b"%d" % PREFLIGHT_MAX_AGE),
            ),
        )


def _cors_refusal(field: str, reason: str) -> Reply:
    return Reply(
        HTTPStatus.FORBIDDEN,
        {
            "error": "cors_refused",
            "message": f"{field} {reason}",
            "field_violations": [{"field": field, "description": reason}],
        },
    )


class _IngestRoutes:
    def __init__(self, ingestor: Ingestor, max_body_bytes: int) -> None:
        self._ingestor = ingestor
        self._max_body_bytes = max_body_bytes

    async def post_event(self, request: Request) -> Reply:
        event = event_from_json(await self._json_body(request))
        event_id = await self._ingestor.ingest(event)
        return Reply(HTTPStatus.ACCEPTED, {"status": "accepted", "event_id": event_id})

    async def post_events(self, request: Request) -> Reply:
        items = events_from_json(await self._json_body(request))
        outcome = await self._ingestor.ingest_batch(items)
        return Reply(
            HTTPStatus.OK,
            {
                "accepted": outcome.accepted_count,
                "rejected": outcome.rejected_count,
                "results": [outcome_to_json(each) for each in outcome.outcomes()],
            },
        )

    async def _json_body(self, request: Request) -> object:
        content_type = request.headers.get(b"content-type", b"").decode("latin-1")
        media_type, _, parameters = content_type.partition(";")
        charset = parameters.strip().lower().removeprefix("charset=").strip('"')
        if media_type.strip().lower() != "application/json" or charset not in ("", "utf-8"):
            raise UnsupportedMediaType("Content-Type must be application/json (UTF-8)")
        declared = request.headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            raise self._too_large()
        # Joined once at the end: adding each chunk to the bytes so far would copy them again
        # for every chunk, quadratic in a body that a client trickles in small pieces.
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
            if size > self._max_body_bytes:
                raise self._too_large()
        return parse_body(b"".join(chunks))

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body must be at most {self._max_body_bytes} bytes")


class _StatsRoutes:
    def __init__(self, reader: StatsReader) -> None:
        self._reader = reader

    async def get_stats(self, request: Request) -> Reply:
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
            if name not in STATS_PARAMETERS:
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
        limit = params.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) < 10):
            violations.append(FieldViolation("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        stats_query = StatsQuery.parse(
            params.get("site_id", ""),
            params.get("date", ""),
            params.get("event_type", ""),
            int(limit) if limit is not None else None,
            start_date=params.get("start_date", ""),
            end_date=params.get("end_date", ""),
        )
        return Reply(HTTPStatus.OK, stats_to_json(await self._reader.get_stats(stats_query)))


def _http_error(request: Request, status: HTTPStatus, headers: Headers = ()) -> Reply:
    code = status.phrase.lower().replace(" ", "_")
    message = f"{request.method} {request.path}: {status.phrase}"
    return Reply(status, {"error": code, "message": message}, headers)


def _retry_after(error: ServiceError) -> Headers:
    return () if error.retry_after is None else ((b"retry-after", b"%d" % error.retry_after),)


async def _send_json(send: Send, reply: Reply) -> None:
    if reply.body is None:
        headers = list(reply.headers)
        body = b""
    else:
        body = _JSON_ENCODER.encode(reply.body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            *reply.headers,
        ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
