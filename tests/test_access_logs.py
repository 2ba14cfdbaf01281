"""What the services say at start about access: an explicit opening is a warning, private is
said too."""

from __future__ import annotations

import logging

import pytest

from core.settings import Settings
from ingest_server.service import log_access as log_ingest_access
from report_server.access import log_access as log_report_access


def test_production_defaults_say_ingest_and_reports_are_private(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        log_ingest_access(Settings())
        log_report_access(Settings())

    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("INFO", "ingest is private"),
        ("INFO", "reports are private"),
    ]


def test_each_opening_setting_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    opened = Settings(ingest_open=True, reports_open=True, admin_open=True)

    with caplog.at_level(logging.INFO):
        log_ingest_access(opened)
        log_report_access(opened)

    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "INGEST_OPEN=1"),
        ("WARNING", "REPORTS_OPEN=1"),
        ("WARNING", "ADMIN_OPEN=1"),
    ]
