"""Log lines: JSON where a machine reads them, text on a terminal, each naming the request it
was written for; and a request's id reaching the writer's lines about its events."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from core.request_ids import REQUEST_ID
from runtime.logs import configure_logging
from tests.support.waiting import eventually
from writer.service import RunningWriter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root logger as pytest had it, once the test is over."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_lines_are_json_objects_when_not_on_a_terminal(restored_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "auto", stream)

    logging.getLogger("some.module").warning("disk %s is full", "/data")

    line = json.loads(stream.getvalue())
    assert {key: line[key] for key in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "some.module",
        "message": "disk /data is full",
    }
    assert line["time"].endswith("Z")


def test_lines_are_text_on_a_terminal(restored_logging: None) -> None:
    stream = Terminal()
    configure_logging("INFO", "auto", stream)

    logging.getLogger("some.module").warning("disk full")

    assert stream.getvalue().endswith(" WARNING some.module: disk full\n")


@pytest.mark.parametrize(("forced", "stream"), [("json", Terminal()), ("text", io.StringIO())])
def test_the_format_can_be_forced(restored_logging: None, forced: str, stream: io.StringIO) -> None:
    configure_logging("INFO", forced, stream)

    logging.getLogger("m").info("hello")

    assert stream.getvalue().startswith("{") == (forced == "json")


def test_a_json_line_written_for_a_request_names_it(restored_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    token = REQUEST_ID.set("req-77")
    try:
        logging.getLogger("m").info("answered")
    finally:
        REQUEST_ID.reset(token)

    assert json.loads(stream.getvalue())["request_id"] == "req-77"


def test_a_text_line_written_for_a_request_names_it(restored_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    token = REQUEST_ID.set("req-78")
    try:
        logging.getLogger("m").info("answered")
    finally:
        REQUEST_ID.reset(token)

    assert stream.getvalue().endswith("m: answered [request req-78]\n")


def test_a_calls_extra_fields_are_fields_of_the_json_line(restored_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)

    logging.getLogger("m").info("stored", extra={"request_ids": ["a", "b"]})

    assert json.loads(stream.getvalue())["request_ids"] == ["a", "b"]


def test_an_exception_is_in_the_json_line(restored_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)

    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("m").exception("failed")

    assert "ValueError: boom" in json.loads(stream.getvalue())["exception"]


async def test_a_requests_id_reaches_the_writers_line_about_its_events(
    http: httpx.AsyncClient, writer: RunningWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="writer.consumer")

    response = await http.post(
        "/event",
        json={"site_id": "site-1", "event_type": "page_view", "path": "/"},
        headers={"X-Request-Id": "trace-me-1"},
    )

    assert response.status_code == 202
    await eventually(lambda: _lines_naming(caplog, "trace-me-1"), 1)
    [record] = [r for r in caplog.records if "trace-me-1" in r.getMessage()]
    assert record.getMessage() == "stored 1 new of 1 events (requests trace-me-1)"
    assert record.__dict__["request_ids"] == ["trace-me-1"]


async def _lines_naming(caplog: pytest.LogCaptureFixture, request_id: str) -> int:
    return sum(request_id in record.getMessage() for record in caplog.records)
