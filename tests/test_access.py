"""The access matrix: every HTTP route and every gRPC method the services serve, asked with no
credential, a wrong one, a revoked one, one for another site (or of another kind) and the right
one, answers exactly as README "Access" says. The routes and methods come from what the stack
serves (its route table, and gRPC reflection's list of services with their descriptors): one
it serves that this matrix does not know fails the first test.

One stack, production's defaults (nothing open), shared by the module's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import pytest_asyncio
from analytics.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
    site_pb2,
    site_pb2_grpc,
)
from analytics_client import AsyncClient
from google.protobuf import descriptor_pool
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from nats.js.errors import NotFoundError

from core.access import PREFIXES
from core.migrator import migrate
from core.settings import Address, Settings
from devstack.api import SERVICES
from devstack.embedded import EmbeddedNats, EmbeddedPostgres
from report_server.credentials import bootstrap_admin_token
from runtime.serve import ApiServer, serving
from tests.support.jetstream import jetstream
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

COLUMNS = ("none", "wrong", "revoked", "other", "right")
# What each kind of route answers to each column but the right one (where the route's own
# success is expected): HTTP status and error code, gRPC status code.
REFUSED = {
    "none": (401, "unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    "wrong": (401, "unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    "revoked": (401, "unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    "other": (403, "permission_denied", grpc.StatusCode.PERMISSION_DENIED),
}
EVENT = {"site_id": "site-a", "event_type": "page_view", "path": "/matrix"}


@dataclass
class World:
    settings: Settings
    api: ApiServer
    http: httpx.AsyncClient
    channel: grpc.aio.Channel
    # Secrets by access kind ("ingest", "read", "admin") and column.
    secrets: dict[str, dict[str, str | None]]

    def secret(self, access: str, column: str) -> str | None:
        return self.secrets[access if access in self.secrets else "ingest"][column]

    async def throwaway_credential(self) -> str:
        """A read token's id, to revoke or rotate."""
        made = await self.http.post(
            "/admin/credentials",
            json={"kind": "read_token", "site_ids": ["site-a"]},
            headers=_bearer(self.secrets["admin"]["right"]),
        )
        credential_id: str = made.json()["credential"]["credential_id"]
        return credential_id


def _bearer(secret: str | None) -> dict[str, str]:
    return {} if secret is None else {"authorization": f"Bearer {secret}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres, tmp_path_factory: Any
) -> AsyncIterator[World]:
    settings, drop = await _closed_settings(nats_server, postgres_server, tmp_path_factory)
    try:
        async with (
            serving(settings, SERVICES) as api,
            httpx.AsyncClient(base_url=f"http://{api.http}", timeout=10) as http,
            grpc.aio.insecure_channel(str(api.grpc)) as channel,
        ):
            yield World(settings, api, http, channel, await _credentials(settings, http))
    finally:
        await drop()


async def _closed_settings(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres, tmp_path_factory: Any
) -> tuple[Settings, Callable[[], Awaitable[None]]]:
    """Settings as production's defaults leave access (nothing open), on a database and NATS
    names of this module's own; and what drops them after."""
    tag = uuid.uuid4().hex[:12]
    name = f"test_{tag}"
    admin = await asyncpg.connect(postgres_server.url())
    await admin.execute(f'CREATE DATABASE "{name}"')
    settings = replace(
        Settings(),
        nats_url=nats_server.url,
        database_url=postgres_server.url(name),
        grpc_listen=Address("127.0.0.1", 0),
        http_listen=Address("127.0.0.1", 0),
        stream_name=f"EVENTS_{tag}",
        subject_prefix=f"test.{tag}.events",
        dead_letter_stream=f"DEAD_{tag}",
        dead_letter_subject=f"test.{tag}.dead_letters",
        data_dir=Path(tmp_path_factory.mktemp("access")),
        sites_bucket=f"SITES_{tag}",
        visitor_keys_bucket=f"KEYS_{tag}",
        credentials_bucket=f"CREDS_{tag}",
    )
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        await migrate(pool)

    async def drop() -> None:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
        async with jetstream(nats_server.url) as context:
            for stream in (
                settings.stream_name,
                settings.dead_letter_stream,
                f"KV_{settings.sites_bucket}",
                f"KV_{settings.visitor_keys_bucket}",
                f"KV_{settings.credentials_bucket}",
            ):
                with contextlib.suppress(NotFoundError):
                    await context.delete_stream(stream)

    return settings, drop


async def _credentials(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, dict[str, str | None]]:
    """Two sites and, for each kind of access, a right, a revoked and another site's (or
    kind's) credential, known to every server before the tests begin."""
    admin = (await bootstrap_admin_token(settings, "matrix")).secret
    as_admin = _bearer(admin)
    # The report server learns of a token made elsewhere through the bucket.
    await eventually(
        lambda: _status(http.get("/admin/credentials", headers=as_admin)), 200, within=10
    )

    async def made(kind: str, sites: list[str]) -> str:
        answer = await http.post(
            "/admin/credentials", json={"kind": kind, "site_ids": sites}, headers=as_admin
        )
        assert answer.status_code == 201, answer.text
        secret: str = answer.json()["secret"]
        return secret

    async def revoked(kind: str, sites: list[str]) -> str:
        answer = await http.post(
            "/admin/credentials", json={"kind": kind, "site_ids": sites}, headers=as_admin
        )
        credential_id = answer.json()["credential"]["credential_id"]
        await http.post(f"/admin/credentials/{credential_id}/revoke", headers=as_admin)
        secret: str = answer.json()["secret"]
        return secret

    for site in ("site-a", "site-b"):
        await http.post("/sites", json={"site_id": site}, headers=as_admin)
    read_a = await made("read_token", ["site-a"])
    world: dict[str, dict[str, str | None]] = {
        "ingest": {
            "right": await made("ingest_key", ["site-a"]),
            "other": await made("ingest_key", ["site-b"]),
            "revoked": await revoked("ingest_key", ["site-a"]),
        },
        "read": {
            "right": read_a,
            "other": await made("read_token", ["site-b"]),
            "revoked": await revoked("read_token", ["site-a"]),
        },
        "admin": {"right": admin, "other": read_a, "revoked": await revoked("admin_token", [])},
    }
    for kind, secrets_of_kind in world.items():
        prefix = PREFIXES[{"ingest": "ingest_key", "read": "read_token"}.get(kind, "admin_token")]
        secrets_of_kind["none"] = None
        secrets_of_kind["wrong"] = prefix + secrets.token_urlsafe(32)
    # The ingest server learns of keys, and of their revocation, through the bucket.
    for column, expected in (("right", 202), ("revoked", 401)):
        headers = _bearer(world["ingest"][column])

        async def answered(headers: dict[str, str] = headers) -> int:
            return (await http.post("/event", json=EVENT, headers=headers)).status_code

        await eventually(answered, expected, within=10)
    return world


async def _status(answer: Awaitable[httpx.Response]) -> int:
    return (await answer).status_code


# HTTP: (method, route) → (access, status of the right answer, what to send).
@dataclass(frozen=True)
class Http:
    access: str  # "ingest", "read", "admin" or "open"
    status: int
    params: dict[str, str] | None = None
    json: Any = None
    path: str | None = None  # the route's {parameters} filled; "{credential}": a throwaway's
    stream: bool = False


SCOPE = {"site_id": "site-a"}
HTTP: dict[tuple[str, str], Http] = {
    ("POST", "/event"): Http("ingest", 202, json=EVENT),
    ("POST", "/events"): Http("ingest", 200, json=[EVENT]),
    ("GET", "/tracker.js"): Http("open", 200),
    ("GET", "/stats"): Http("read", 200, SCOPE),
    ("GET", "/reports/metrics"): Http("read", 200, SCOPE),
    ("GET", "/reports/timeseries"): Http("read", 200, SCOPE),
    ("GET", "/reports/breakdown"): Http("read", 200, {**SCOPE, "dimension": "path"}),
    ("GET", "/reports/live"): Http("read", 200, SCOPE, stream=True),
    ("GET", "/reports/export"): Http("read", 200, SCOPE),
    ("GET", "/filtered-traffic"): Http(
        "read", 200, {**SCOPE, "start_date": "2026-01-01", "end_date": "2026-01-02"}
    ),
    ("GET", "/sites"): Http("admin", 200),
    ("POST", "/sites"): Http("admin", 201, json={"site_id": "{new}"}),
    ("GET", "/sites/{site_id}"): Http("admin", 200, path="/sites/site-a"),
    ("PATCH", "/sites/{site_id}"): Http("admin", 200, json={"name": "A"}, path="/sites/site-a"),
    ("GET", "/admin/credentials"): Http("admin", 200),
    ("POST", "/admin/credentials"): Http(
        "admin", 201, json={"kind": "read_token", "site_ids": ["site-a"]}
    ),
    ("POST", "/admin/credentials/{credential_id}/revoke"): Http(
        "admin", 200, path="/admin/credentials/{credential}/revoke"
    ),
    ("POST", "/admin/credentials/{credential_id}/rotate"): Http(
        "admin", 201, path="/admin/credentials/{credential}/rotate"
    ),
    # The dashboard's page and files are public; the reports they ask for are not.
    ("GET", "/"): Http("open", 200),
    ("GET", "/dashboard/{name}"): Http("open", 200, path="/dashboard/dashboard.js"),
    ("GET", "/healthz"): Http("open", 200),
    ("GET", "/readyz"): Http("open", 200),
    ("GET", "/metrics"): Http("open", 200),
}


def _event() -> event_pb2.Event:
    return event_pb2.Event(site_id="site-a", event_type="page_view", path="/matrix")


def _scope() -> report_pb2.Scope:
    return report_pb2.Scope(site_id="site-a")


@dataclass(frozen=True)
class Rpc:
    access: str  # as Http's, or "unimplemented"
    # The request (a message, or a list of them for a client stream); "{credential}" in a
    # credential_id: a throwaway's.
    request: Callable[[], Any]


RPCS: dict[str, Rpc] = {
    "/analytics.v1.IngestService/Ingest": Rpc(
        "ingest", lambda: ingest_pb2.IngestRequest(event=_event())
    ),
    "/analytics.v1.IngestService/IngestBatch": Rpc(
        "ingest", lambda: ingest_pb2.IngestBatchRequest(events=[_event()])
    ),
    "/analytics.v1.IngestService/IngestStream": Rpc("ingest", lambda: [_event()]),
    "/analytics.v1.IngestService/IngestBatchStream": Rpc(
        "ingest", lambda: [ingest_pb2.IngestBatchRequest(events=[_event()])]
    ),
    "/analytics.v1.ReportService/GetStats": Rpc(
        "read", lambda: report_pb2.GetStatsRequest(site_id="site-a")
    ),
    "/analytics.v1.ReportService/GetMetrics": Rpc(
        "read", lambda: report_pb2.MetricsRequest(scope=_scope())
    ),
    "/analytics.v1.ReportService/GetTimeSeries": Rpc(
        "read", lambda: report_pb2.TimeSeriesRequest(scope=_scope())
    ),
    "/analytics.v1.ReportService/GetBreakdown": Rpc(
        "read", lambda: report_pb2.BreakdownRequest(scope=_scope(), dimension="path")
    ),
    "/analytics.v1.ReportService/WatchLive": Rpc(
        "read", lambda: report_pb2.WatchLiveRequest(site_id="site-a")
    ),
    "/analytics.v1.ReportService/ExportEvents": Rpc(
        "read", lambda: report_pb2.ExportRequest(scope=_scope())
    ),
    "/analytics.v1.ReportService/GetFilteredTraffic": Rpc(
        "read",
        lambda: report_pb2.GetFilteredTrafficRequest(
            site_id="site-a", start_date="2026-01-01", end_date="2026-01-02"
        ),
    ),
    "/analytics.v1.SiteService/CreateSite": Rpc(
        "admin", lambda: site_pb2.CreateSiteRequest(site_id=f"s-{uuid.uuid4().hex[:8]}")
    ),
    "/analytics.v1.SiteService/GetSite": Rpc(
        "admin", lambda: site_pb2.GetSiteRequest(site_id="site-a")
    ),
    "/analytics.v1.SiteService/ListSites": Rpc("admin", site_pb2.ListSitesRequest),
    "/analytics.v1.SiteService/UpdateSite": Rpc(
        "admin",
        lambda: site_pb2.UpdateSiteRequest(
            site=site_pb2.Site(site_id="site-a", name="A"), update_mask=FieldMask(paths=["name"])
        ),
    ),
    "/analytics.v1.AdminService/CreateCredential": Rpc(
        "admin",
        lambda: admin_pb2.CreateCredentialRequest(kind="read_token", site_ids=["site-a"]),
    ),
    "/analytics.v1.AdminService/ListCredentials": Rpc("admin", admin_pb2.ListCredentialsRequest),
    "/analytics.v1.AdminService/RevokeCredential": Rpc(
        "admin", lambda: admin_pb2.RevokeCredentialRequest(credential_id="{credential}")
    ),
    "/analytics.v1.AdminService/RotateCredential": Rpc(
        "admin", lambda: admin_pb2.RotateCredentialRequest(credential_id="{credential}")
    ),
    "/grpc.health.v1.Health/Check": Rpc("open", health_pb2.HealthCheckRequest),
    "/grpc.health.v1.Health/Watch": Rpc("open", health_pb2.HealthCheckRequest),
    # In the descriptor, not in grpcio-health-checking's servicer: answered UNIMPLEMENTED.
    "/grpc.health.v1.Health/List": Rpc(
        "unimplemented",
        health_pb2.HealthListRequest,  # type: ignore[attr-defined]  # newer than its stubs
    ),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rpc(
        "open", lambda: [reflection_pb2.ServerReflectionRequest(list_services="")]
    ),
}
STUBS: dict[str, Any] = {
    "analytics.v1.IngestService": ingest_pb2_grpc.IngestServiceStub,
    "analytics.v1.ReportService": report_pb2_grpc.ReportServiceStub,
    "analytics.v1.SiteService": site_pb2_grpc.SiteServiceStub,
    "analytics.v1.AdminService": admin_pb2_grpc.AdminServiceStub,
    "grpc.health.v1.Health": health_pb2_grpc.HealthStub,
    "grpc.reflection.v1alpha.ServerReflection": reflection_pb2_grpc.ServerReflectionStub,
}


async def test_the_matrix_covers_every_route_and_method_served(world: World) -> None:
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(world.channel)  # type: ignore[arg-type]
    listing = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    [answer] = [each async for each in listing]
    methods = [
        f"/{service.full_name}/{method.name}"
        for listed in answer.list_services_response.service
        for service in [descriptor_pool.Default().FindServiceByName(listed.name)]
        for method in service.methods
    ]

    assert sorted(world.api.http_routes) == sorted(HTTP)
    assert sorted(methods) == sorted(RPCS)


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("route", list(HTTP), ids=" ".join)
async def test_an_http_route_answers_as_documented(
    world: World, route: tuple[str, str], column: str
) -> None:
    method, declared = route
    case = HTTP[route]
    path = case.path or declared
    if "{credential}" in path:
        path = path.replace("{credential}", await world.throwaway_credential())
    body = case.json
    if body == {"site_id": "{new}"}:
        body = {"site_id": f"s-{uuid.uuid4().hex[:8]}"}
    headers = _bearer(world.secret(case.access, column))
    async with world.http.stream(
        method, path, params=case.params, json=body, headers=headers
    ) as answer:
        if case.stream and answer.status_code == 200:
            status, error = 200, None
        else:
            await answer.aread()
            status = answer.status_code
            error = answer.json().get("error") if status >= 400 else None
            challenge = answer.headers.get("www-authenticate")

    if case.access == "open" or column == "right":
        assert (status, error) == (case.status, None)
    else:
        expected_status, expected_error, _ = REFUSED[column]
        assert (status, error) == (expected_status, expected_error)
        assert challenge == ('Bearer realm="analytics"' if status == 401 else None)


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("method", list(RPCS))
async def test_a_grpc_method_answers_as_documented(world: World, method: str, column: str) -> None:
    case = RPCS[method]
    request = case.request()
    if getattr(request, "credential_id", "") == "{credential}":
        request.credential_id = await world.throwaway_credential()
    service, name = method.strip("/").split("/")
    call = getattr(STUBS[service](world.channel), name)
    metadata = tuple(
        ("authorization", value) for value in _bearer(world.secret(case.access, column)).values()
    )

    code = await _outcome(call, request, metadata)

    if case.access == "unimplemented":
        expected = grpc.StatusCode.UNIMPLEMENTED
    elif column == "right" or case.access == "open":
        expected = grpc.StatusCode.OK
    else:
        expected = REFUSED[column][2]
    assert code == expected


async def _outcome(call: Any, request: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    """The status a call ends with, reading a server stream's first answer at most."""

    async def each() -> AsyncIterator[Any]:
        for message in request:
            yield message

    try:
        if isinstance(request, list):
            started = call(each(), metadata=metadata)
            if hasattr(started, "read"):  # a bidirectional stream
                await started.read()
                started.cancel()
            else:
                await started
        else:
            started = call(request, metadata=metadata)
            if hasattr(started, "read"):  # a server stream
                await started.read()
                started.cancel()
            else:
                await started
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


# Beyond the matrix: what the columns do not show.


async def test_a_public_site_is_read_without_a_token(world: World) -> None:
    as_admin = _bearer(world.secrets["admin"]["right"])
    await world.http.post(
        "/sites", json={"site_id": "open-site", "report_visibility": "public"}, headers=as_admin
    )

    answer = await world.http.get("/stats", params={"site_id": "open-site"})

    assert answer.status_code == 200


async def test_a_site_that_requires_a_key_refuses_a_browser_without_one(world: World) -> None:
    as_admin = _bearer(world.secrets["admin"]["right"])
    await world.http.post(
        "/sites", json={"site_id": "keyed", "ingest_policy": "key_required"}, headers=as_admin
    )
    browser = {"origin": "https://keyed.example", "user-agent": "Mozilla/5.0 (X11; Linux)"}

    async def refused() -> int:
        answer = await world.http.post(
            "/event", json={**EVENT, "site_id": "keyed"}, headers=browser
        )
        return answer.status_code

    await eventually(refused, 401, within=10)
    answer = await world.http.post("/event", json={**EVENT, "site_id": "keyed"}, headers=browser)
    assert answer.json() == {
        "error": "unauthenticated",
        "message": "site 'keyed' requires an ingest key (Authorization: Bearer anik_...)",
    }


async def test_a_browser_event_older_than_the_backfill_window_is_refused_naming_timestamp(
    world: World,
) -> None:
    browser = {"origin": "https://a.example", "user-agent": "Mozilla/5.0 (X11; Linux)"}
    old = {**EVENT, "timestamp": "2026-01-01T00:00:00Z"}

    without_key = await world.http.post("/event", json=old, headers=browser)
    with_key = await world.http.post(
        "/event", json=old, headers=_bearer(world.secrets["ingest"]["right"])
    )

    assert without_key.status_code == 400
    assert without_key.json()["field_violations"] == [
        {
            "field": "timestamp",
            "description": "must not be more than 2 days before the server's clock without an "
            "ingest key (KEYLESS_BACKFILL_DAYS)",
        }
    ]
    assert with_key.status_code == 202


async def test_an_answer_to_a_request_with_a_token_names_its_origin_never_any(
    world: World,
) -> None:
    headers = {**_bearer(world.secrets["read"]["right"]), "origin": "https://dash.example"}

    answer = await world.http.get("/stats", params={"site_id": "site-a"}, headers=headers)

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"
    assert answer.headers["vary"] == "Origin"


async def test_only_the_hash_of_a_secret_is_stored(world: World) -> None:
    as_admin = _bearer(world.secrets["admin"]["right"])
    made = (
        await world.http.post(
            "/admin/credentials",
            json={"kind": "ingest_key", "site_ids": ["site-a"], "name": "stored"},
            headers=as_admin,
        )
    ).json()
    listed = (await world.http.get("/admin/credentials", headers=as_admin)).json()
    connection = await asyncpg.connect(world.settings.database_url)
    try:
        row = await connection.fetchrow(
            "SELECT * FROM credentials WHERE credential_id = $1",
            made["credential"]["credential_id"],
        )
    finally:
        await connection.close()

    secret = made["secret"]
    assert secret.startswith("anik_")
    assert len(secret) == len("anik_") + 43  # 32 random bytes, URL-safe base64
    assert row is not None
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(dict(row))
    assert secret not in str(listed)


async def test_a_key_made_with_the_cli_sends_events(world: World) -> None:
    made = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "report_server.admin_cli", "--target", str(world.api.grpc)),
        *("keys", "create", "site-a", "--name", "cli"),
        env={**os.environ, "ANALYTICS_TOKEN": str(world.secrets["admin"]["right"])},
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await made.communicate()
    secret = output.decode().splitlines()[-1]

    async def answered() -> int:
        answer = await world.http.post("/event", json=EVENT, headers=_bearer(secret))
        return answer.status_code

    assert made.returncode == 0
    assert secret.startswith("anik_")
    await eventually(answered, 202, within=10)


async def test_a_revoked_key_stops_working_on_the_ingest_server(world: World) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(world.channel)
    metadata = (("authorization", f"Bearer {world.secrets['admin']['right']}"),)
    made = await admin.CreateCredential(
        admin_pb2.CreateCredentialRequest(kind="ingest_key", site_ids=["site-a"]),
        metadata=metadata,
    )
    headers = _bearer(made.secret)

    async def answered() -> int:
        return (await world.http.post("/event", json=EVENT, headers=headers)).status_code

    await eventually(answered, 202, within=10)
    await admin.RevokeCredential(
        admin_pb2.RevokeCredentialRequest(credential_id=made.credential.credential_id),
        metadata=metadata,
    )
    await eventually(answered, 401, within=10)


async def test_a_rotated_token_is_replaced_by_its_new_secret(world: World) -> None:
    as_admin = _bearer(world.secrets["admin"]["right"])
    made = (
        await world.http.post(
            "/admin/credentials",
            json={"kind": "read_token", "site_ids": ["site-a"], "name": "dash"},
            headers=as_admin,
        )
    ).json()
    old_id = made["credential"]["credential_id"]

    rotated = await world.http.post(f"/admin/credentials/{old_id}/rotate", headers=as_admin)
    old = await world.http.get("/stats", params=SCOPE, headers=_bearer(made["secret"]))
    new = await world.http.get("/stats", params=SCOPE, headers=_bearer(rotated.json()["secret"]))
    again = await world.http.post(f"/admin/credentials/{old_id}/rotate", headers=as_admin)

    assert rotated.status_code == 201
    assert rotated.json()["credential"]["replaces"] == old_id
    assert rotated.json()["credential"]["name"] == "dash"
    assert (old.status_code, new.status_code) == (401, 200)
    assert again.status_code == 400


async def test_the_client_library_sends_with_its_api_key(world: World) -> None:
    async with (
        AsyncClient(str(world.api.grpc), api_key=world.secrets["ingest"]["right"]) as keyed,
        AsyncClient(str(world.api.grpc)) as keyless,
    ):
        await keyed.track("site-a", "page_view", "/client")
        await keyless.track("site-a", "page_view", "/client")
        await keyed.flush()
        await keyless.flush()

        assert (keyed.stats.sent, keyed.stats.rejected) == (1, 0)
        assert (keyless.stats.sent, keyless.stats.rejected) == (0, 1)


async def test_a_report_without_a_site_id_is_refused_for_it_not_for_access(world: World) -> None:
    answer = await world.http.get("/stats")

    assert answer.status_code == 400
    assert answer.json()["field_violations"] == [{"field": "site_id", "description": "is required"}]


async def test_an_authorization_of_another_scheme_is_refused_naming_the_form(world: World) -> None:
    answer = await world.http.get(
        "/stats", params=SCOPE, headers={"authorization": "Basic dXNlcjpwYXNz"}
    )

    assert answer.status_code == 401
    assert answer.json() == {
        "error": "unauthenticated",
        "message": "the authorization must be 'Bearer <secret>'",
    }
