"""The HTTP shim for browsers and curl: `POST /event`, `POST /events`, `GET /stats`.

It holds no rules of its own: it reads and checks the HTTP envelope (content type, body size,
query string), decodes JSON into the messages the gRPC servicers receive, and calls the same
Ingestor and StatsReader they call. Every error body is JSON naming the field at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest_server.ingestor import Ingestor, count_accepted
from report_server.stats import MAX_LIMIT, StatsQuery, StatsReader
from stack.errors import (
    FieldViolation,
    InvalidArgument,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from stack.http_json import (
    error_to_json,
    event_from_json,
    events_from_json,
    outcome_to_json,
    parse_body,
    stats_to_json,
)

STATS_PARAMETERS = ("site_id", "date", "event_type", "limit")


def create_app(
    *,
    ingestor: Ingestor | None,
    stats: StatsReader | None,
    max_body_bytes: int,
    cors_allow_origins: Sequence[str],
) -> Starlette:
    """The shim for whichever services this process runs (ingest, report or both)."""
    routes: list[Route] = []
    if ingestor is not None:
        shim = _IngestRoutes(ingestor, max_body_bytes)
        routes += [
            Route("/event", shim.post_event, methods=["POST"]),
            Route("/events", shim.post_events, methods=["POST"]),
        ]
    if stats is not None:
        routes.append(Route("/stats", _StatsRoutes(stats).get_stats, methods=["GET"]))
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_allow_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type"],
                max_age=86400,
            )
        ],
        exception_handlers={
            ServiceError: _service_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


class _IngestRoutes:
    def __init__(self, ingestor: Ingestor, max_body_bytes: int) -> None:
        self._ingestor = ingestor
        self._max_body_bytes = max_body_bytes

    async def post_event(self, request: Request) -> Response:
        event = event_from_json(await self._json_body(request))
        event_id = await self._ingestor.ingest(event)
        return JSONResponse(
            {"status": "accepted", "event_id": event_id}, status_code=HTTPStatus.ACCEPTED
        )

    async def post_events(self, request: Request) -> Response:
        items = events_from_json(await self._json_body(request))
        outcomes = await self._ingestor.ingest_batch(items)
        accepted = count_accepted(outcomes)
        return JSONResponse(
            {
                "accepted": accepted,
                "rejected": len(outcomes) - accepted,
                "results": [outcome_to_json(outcome) for outcome in outcomes],
            }
        )

    async def _json_body(self, request: Request) -> object:
        media_type, _, parameters = request.headers.get("content-type", "").partition(";")
        charset = parameters.strip().lower().removeprefix("charset=").strip('"')
        if media_type.strip().lower() != "application/json" or charset not in ("", "utf-8"):
            raise UnsupportedMediaType("Content-Type must be application/json (UTF-8)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            raise self._too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body_bytes:
                raise self._too_large()
        return parse_body(bytes(body))

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body must be at most {self._max_body_bytes} bytes")


class _StatsRoutes:
    def __init__(self, reader: StatsReader) -> None:
        self._reader = reader

    async def get_stats(self, request: Request) -> Response:
        params: dict[str, str] = {}
        violations: list[FieldViolation] = []
        for name, value in request.query_params.multi_items():
            if name not in STATS_PARAMETERS:
                violations.append(FieldViolation(name[:64], "is not a known parameter"))
            elif name in params:
                violations.append(FieldViolation(name, "appears more than once"))
            params[name] = value
        limit = params.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) < 10):
            violations.append(FieldViolation("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
        if violations:
            raise InvalidArgument(violations)
        query = StatsQuery.parse(
            params.get("site_id", ""),
            params.get("date", ""),
            params.get("event_type", ""),
            int(limit) if limit is not None else None,
        )
        return JSONResponse(stats_to_json(await self._reader.get_stats(query)))


async def _service_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return JSONResponse(error_to_json(error), status_code=error.http_status, headers=headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    status = HTTPStatus(error.status_code)
    code = status.phrase.lower().replace(" ", "_")
    return JSONResponse(
        {"error": code, "message": f"{request.method} {request.url.path}: {status.phrase}"},
        status_code=status,
        headers=error.headers,
    )


async def _internal_error(request: Request, error: Exception) -> Response:
    return JSONResponse(
        {"error": "internal", "message": "internal error"},
        status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    )
