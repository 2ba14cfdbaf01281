"""OpenAPI 3.1 for the HTTP door: each service declares its operations beside its route table
(an `API` of path → method → OpenAPI operation object, written with the helpers here), and a
process serves the document of the routes it serves at `GET /openapi.json`, with a page that
renders it at `GET /docs` (a static file: no CDN, no script from elsewhere).

The document is built from the route table and the declarations together, and building it fails
if one holds a route or a method the other lacks: a route cannot be served undocumented, nor a
documented one go missing, without the server refusing to start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from importlib.resources import files
from typing import Any

from transports.http_app import Handler, Reply, Request, Routes

Schema = dict[str, Any]
Operation = dict[str, Any]
# Path → method (upper case, as in the route table) → OpenAPI operation object.
Api = Mapping[str, Mapping[str, Operation]]

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "An error: `error` is the google.rpc.Code's name in lower case (or the HTTP "
    "status's phrase), `message` says what went wrong",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field_violations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "description"],
                "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "limit": {"type": "string", "description": "the rate limit that refused the request"},
        "subject": {"type": "string", "description": "what the rate limit counted"},
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "whole seconds after which the same request may pass",
        "schema": {"type": "string"},
    }
}
# What any route may answer besides its own answers, by status.
_ERRORS = {
    "400": "invalid input: each bad field or parameter is named in `field_violations`",
    "401": "a credential is needed (`Authorization: Bearer …`), or the one given is wrong or "
    "revoked",
    "403": "the credential given does not allow this (another site's, or not an admin token)",
    "404": "no such thing (a site, a credential)",
    "405": "the route does not take this method (`Allow` names those it takes)",
    "408": "the request was not sent whole in time",
    "409": "it exists already",
    "413": "the body is over the bound",
    "415": "the body is not of a content type the route reads",
    "429": "a limit was reached: a rate limit (`limit` names it) or a bound of the server; "
    "`Retry-After` says when to try again",
    "503": "a dependency is unreachable, or the server is at its bound of connections; "
    "`Retry-After` says when to try again",
}


# The shapes of the fields many routes share, as JSON Schema: what the server accepts (it
# checks more, e.g. that a date exists); requests made from them reach past the first check.
SITE_ID: Schema = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    "description": "1-128 letters, digits, `.`, `_`, `-`, starting with a letter or digit",
}
DATE: Schema = {
    "type": "string",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "description": "a day, `YYYY-MM-DD`",
}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def returns(description: str, schema: Schema | None = None, media: str = "") -> dict[str, Any]:
    """A response: JSON of `schema`, or a body of `media` type (a string), or none."""
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}} if media else json_content(schema)
    return response


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses of these statuses, each with the shared Error schema."""
    responses = {}
    for status in statuses:
        response = returns(_ERRORS[str(status)], ERROR_REF)
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        responses[str(status)] = response
    return responses


def query(
    name: str, description: str, schema: Schema | None = None, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string"},
    }


def operation(
    summary: str,
    responses: Mapping[str, Any],
    *,
    description: str = "",
    parameters: Sequence[Mapping[str, Any]] = (),
    body: Schema | None = None,
    tag: str = "",
) -> Operation:
    """An operation object; `body`: the schema of a JSON request body (required)."""
    op: Operation = {"summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = {"required": True, "content": json_content(body)}
    if tag:
        op["tags"] = [tag]
    return op


class UndocumentedRoutes(ValueError):
    """The route table and the declarations differ."""


def document(title: str, description: str, routes: Routes, api: Api) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`; UndocumentedRoutes if `api` does not declare
    exactly their paths and methods."""
    served = {(path, method) for path, methods in routes.items() for method in methods}
    declared = {(path, method) for path, methods in api.items() for method in methods}
    if served != declared:
        problems = [f"{m} {p} is served but not documented" for p, m in sorted(served - declared)]
        problems += [f"{m} {p} is documented but not served" for p, m in sorted(declared - served)]
        raise UndocumentedRoutes("; ".join(problems))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": {
            path: {method.lower(): op for method, op in sorted(api[path].items())}
            for path in sorted(api)
        },
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


_PAGE = files("transports").joinpath("openapi.html").read_bytes()

API: dict[str, dict[str, Operation]] = {
    "/openapi.json": {
        "GET": operation(
            "This document: the OpenAPI 3.1 description of every route of this server",
            {"200": returns("the document", {"type": "object"})},
            tag="about",
        )
    },
    "/docs": {
        "GET": operation(
            "A page that renders this document, for people",
            {"200": returns("the page", {"type": "string"}, "text/html")},
            tag="about",
        )
    },
}


def routes(document: Mapping[str, Any]) -> dict[str, dict[str, Handler]]:
    """`GET /openapi.json` and `GET /docs`, serving `document` (made once)."""
    body = json.dumps(document, ensure_ascii=False, indent=1).encode()

    async def get_document(request: Request) -> Reply:
        return Reply(HTTPStatus.OK, body, ((b"content-type", b"application/json"),))

    async def get_page(request: Request) -> Reply:
        return Reply(HTTPStatus.OK, _PAGE, ((b"content-type", b"text/html; charset=utf-8"),))

    return {"/openapi.json": {"GET": get_document}, "/docs": {"GET": get_page}}
