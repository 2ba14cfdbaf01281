"""The OpenAPI document of the HTTP routes: built from the route table and the declarations
together, served at /openapi.json and rendered at /docs, and kept true by schemathesis, which
sends requests made from it to the running services and checks each answer against it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import checks
from schemathesis.core.result import Ok

from runtime.serve import ApiServer
from transports.http_app import Reply, Request
from transports.openapi import UndocumentedRoutes, document, operation, returns

# Requests per route: enough to reach each route's branches of bad input, within a minute.
EXAMPLES = 25
# An endless stream: schemathesis would wait for its end.
NOT_FUZZED = {("GET", "/reports/live")}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


async def _handler(request: Request) -> Reply:
    return Reply(200, {})


DOCUMENTED = {"/a": {"GET": operation("a", {"200": returns("ok")})}}


def test_a_route_served_but_not_documented_stops_the_build_naming_it() -> None:
    routes = {"/a": {"GET": _handler, "POST": _handler}, "/b": {"GET": _handler}}
    with pytest.raises(UndocumentedRoutes) as refused:
        document("t", "", routes, DOCUMENTED)
    assert str(refused.value) == (
        "POST /a is served but not documented; GET /b is served but not documented"
    )


def test_a_route_documented_but_not_served_stops_the_build_naming_it() -> None:
    with pytest.raises(UndocumentedRoutes) as refused:
        document("t", "", {}, DOCUMENTED)
    assert str(refused.value) == "GET /a is documented but not served"


async def test_the_document_lists_every_route_of_both_services(http: httpx.AsyncClient) -> None:
    answer = await http.get("/openapi.json")
    assert answer.status_code == 200
    spec = answer.json()
    assert spec["openapi"] == "3.1.0"
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert {("POST", "/event"), ("GET", "/stats"), ("PATCH", "/sites/{site_id}")} <= routes
    assert {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/docs")} <= routes


async def test_the_docs_page_renders_the_document_from_this_server_alone(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/docs")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'fetch("openapi.json")' in page.text
    assert "src=" not in page.text  # no script or style fetched from anywhere


def _fuzz(base_url: str, spec: dict[str, Any]) -> list[str]:
    """Schemathesis's generated requests against every operation; the failures, described."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        op = result.ok()
        if (op.method.upper(), op.path) in NOT_FUZZED:
            continue

        @hypothesis.given(case=op.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def call(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS)

        try:
            call()
        except Exception as failure:
            failures.append(f"{op.method.upper()} {op.path}: {failure}")
    return failures


async def test_every_answer_conforms_to_the_document_and_none_is_a_server_error(
    api: ApiServer, http: httpx.AsyncClient
) -> None:
    spec = (await http.get("/openapi.json")).json()
    failures = await asyncio.to_thread(_fuzz, f"http://{api.http}", spec)
    assert failures == []
