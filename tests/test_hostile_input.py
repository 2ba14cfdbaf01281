"""Property-based tests: whatever a client sends is either accepted and stored exactly as sent,
or refused with a 4xx / INVALID_ARGUMENT; never a 5xx, never a crash, never a partial row.

The services run as separate processes (as in production), so that hypothesis can drive them
from plain synchronous code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from analytics.v1 import ingest_pb2_grpc
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Address, Settings
from devstack.embedded import accepts_connections, free_port
from tests.support.env import ServiceStarter

EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("event_id", "site_id", "event_type", "path", "user_id", "referrer")


@dataclass
class Deployed:
    http: httpx.Client
    channel: grpc.Channel
    database_url: str
    accepted_ids: set[str] = field(default_factory=set)

    @property
    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self.channel)

    def first_acceptance(self, event_id: str) -> bool:
        """Whether no earlier example had this event_id accepted (a resend keeps the first)."""
        first = event_id not in self.accepted_ids
        self.accepted_ids.add(event_id)
        return first

    def stored(self, event_id: str) -> dict[str, Any]:
        """The stored row of an accepted event, waiting for the writer."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            row = asyncio.run(self._row(event_id))
            if row is not None:
                return row
            time.sleep(0.02)
        raise AssertionError(f"accepted event {event_id!r} was not stored")

    async def _row(self, event_id: str) -> dict[str, Any] | None:
        connection = await asyncpg.connect(self.database_url)
        try:
            row = await connection.fetchrow("SELECT * FROM events WHERE event_id = $1", event_id)
        finally:
            await connection.close()
        return None if row is None else dict(row)


@pytest.fixture
def deployed(
    settings: Settings, services: ServiceStarter, db: asyncpg.Connection
) -> Iterator[Deployed]:
    http_port, grpc_port = free_port(), free_port()
    settings = replace(
        settings,
        http_listen=Address("127.0.0.1", http_port),
        grpc_listen=Address("127.0.0.1", grpc_port),
    )
    services("devstack.api", settings)
    services("writer", settings)
    deadline = time.monotonic() + 30
    while not (accepts_connections(http_port) and accepts_connections(grpc_port)):
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    assert settings.database_url is not None
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http,
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        yield Deployed(http, channel, settings.database_url)


# Text that is valid in every field: any code point but controls and surrogates, with the
# characters that trip up encoders, SQL and JSON drawn more often.
printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
tricky = st.sampled_from("'\"\\%_;-/<>&\u00a0\u200b\u202e\ufeff\U0001f469\u200d\U0001f4bb\u0301")
valid_text = st.text(st.one_of(printable, tricky))
# Any code point, lone surrogates and controls included, and long strings.
hostile_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),
    st.text(st.sampled_from("\x00\n\t \u00a0\ud800\udfff'\"\\%/;"), max_size=9),
    st.text(max_size=3000),
)
json_value: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=10,
)
valid_fields: dict[str, st.SearchStrategy[str]] = {
    "event_id": st.uuids().map(str),
    "site_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True),
    "event_type": valid_text.filter(lambda s: s and s == s.strip()).map(lambda s: s[:100]),
    "path": valid_text.map(lambda s: "/" + s[:200]),
    "user_id": valid_text.map(lambda s: s[:256]),
    "referrer": valid_text.map(lambda s: s[:300]),
}
valid_properties = st.dictionaries(
    valid_text.filter(bool).map(lambda s: s[:64]), valid_text.map(lambda s: s[:1024]), max_size=8
)
valid_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Events any client may send: every field valid, the optional ones sometimes absent."""
    body: dict[str, Any] = {name: draw(strategy) for name, strategy in valid_fields.items()}
    for optional in ("event_id", "user_id", "referrer"):
        if draw(st.booleans()):
            del body[optional]
    if draw(st.booleans()):
        body["properties"] = draw(valid_properties)
    if draw(st.booleans()):
        body["timestamp"] = draw(valid_times).isoformat()
    return body


@st.composite
def any_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Events with any field, sometimes an unknown one, holding anything JSON can."""
    body = draw(valid_bodies())
    for name in (*valid_fields, "properties", "timestamp"):
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(json_value)
    if draw(st.integers(0, 5)) == 0:
        body[draw(hostile_text)] = draw(json_value)
    return body


def post(deployed: Deployed, body: dict[str, Any]) -> httpx.Response:
    return deployed.http.post(
        "/event",
        content=json.dumps(body, ensure_ascii=True).encode(),
        headers={"content-type": "application/json"},
    )


def assert_stored_as_sent(deployed: Deployed, event_id: str, body: dict[str, Any]) -> None:
    """The row holds exactly what was sent (unless an earlier example sent this id first)."""
    row = deployed.stored(event_id)
    if not deployed.first_acceptance(event_id):
        return
    assert {name: row[name] for name in FIELDS} == {
        name: body.get(name) or (event_id if name == "event_id" else None) for name in FIELDS
    }
    assert json.loads(row["properties"]) == (body.get("properties") or {})
    if body.get("timestamp"):
        assert row["occurred_at"] == datetime.fromisoformat(body["timestamp"])


@EXAMPLES
@given(body=valid_bodies())
def test_any_valid_json_event_is_accepted_and_stored_exactly_as_sent(
    deployed: Deployed, body: dict[str, Any]
) -> None:
    response = post(deployed, body)

    assert response.status_code == 202, response.text
    assert_stored_as_sent(deployed, response.json()["event_id"], body)


@EXAMPLES
@given(body=any_bodies())
def test_any_json_event_is_stored_exactly_as_sent_or_refused_with_400(
    deployed: Deployed, body: dict[str, Any]
) -> None:
    response = post(deployed, body)

    assert response.status_code in (202, 400), response.text
    if response.status_code == 202:
        assert_stored_as_sent(deployed, response.json()["event_id"], body)
    else:
        assert response.json()["field_violations"]


@EXAMPLES
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.just("[]"), lambda inner: inner.map(lambda s: f"[{s}]"), max_leaves=3000
        ).map(str.encode),
        st.lists(st.sampled_from(["site_id", "path"]), min_size=2, max_size=3).map(
            lambda keys: ("{" + ",".join(f'"{k}": "/x"' for k in keys) + "}").encode()
        ),
    )
)
def test_any_bytes_as_a_json_body_get_202_or_400(deployed: Deployed, body: bytes) -> None:
    response = deployed.http.post(
        "/event", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code in (202, 400), response.text


def grpc_event(body: dict[str, Any], seconds: int | None = None, nanos: int = 0) -> Event:
    event = Event(properties=body.get("properties") or {})
    for name in FIELDS:
        if name in body:
            setattr(event, name, body[name])
    if body.get("timestamp"):
        event.timestamp.FromDatetime(datetime.fromisoformat(body["timestamp"]))
    if seconds is not None:
        event.timestamp.seconds = seconds
        event.timestamp.nanos = nanos
    return event


@EXAMPLES
@given(body=valid_bodies())
def test_any_valid_grpc_event_is_accepted_and_stored_exactly_as_sent(
    deployed: Deployed, body: dict[str, Any]
) -> None:
    status, event_id = _ingest(deployed, grpc_event(body))

    assert status == grpc.StatusCode.OK
    assert_stored_as_sent(deployed, event_id, body)


@EXAMPLES
@given(
    fields=st.fixed_dictionaries(
        {
            name: st.one_of(valid_fields[name], st.text(st.characters(codec="utf-8")))
            for name in FIELDS
        }
    ),
    properties=st.dictionaries(st.text(), st.text(), max_size=40),
    seconds=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**34)),
    nanos=st.integers(-(2**31), 2**31 - 1),
)
def test_any_grpc_event_is_stored_exactly_as_sent_or_refused_with_invalid_argument(
    deployed: Deployed,
    fields: dict[str, str],
    properties: dict[str, str],
    seconds: int | None,
    nanos: int,
) -> None:
    event = grpc_event({**fields, "properties": properties}, seconds, nanos)

    status, event_id = _ingest(deployed, event)

    assert status in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    if status == grpc.StatusCode.OK:
        assert_stored_as_sent(deployed, event_id, {**fields, "properties": properties})


@EXAMPLES
@given(request=st.binary(max_size=300))
def test_any_bytes_as_a_grpc_request_get_ok_or_invalid_argument(
    deployed: Deployed, request: bytes
) -> None:
    ingest: grpc.UnaryUnaryMultiCallable[bytes, bytes] = deployed.channel.unary_unary(
        "/analytics.v1.IngestService/Ingest"
    )
    try:
        ingest(request, timeout=10)
        status = grpc.StatusCode.OK
    except grpc.RpcError as error:
        status = error.code()

    assert status in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)


def _ingest(deployed: Deployed, event: Event) -> tuple[grpc.StatusCode, str]:
    try:
        response = deployed.ingest.Ingest(IngestRequest(event=event), timeout=10)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code, ""
    return grpc.StatusCode.OK, response.event_id
