"""Every service's log lines: one JSON object per line where a machine reads them (stderr not a
terminal: a container, a supervisor, a file), lines for a person on a terminal; LOG_FORMAT
forces either. A line written while a request is served names the request's id
(core.request_ids), in both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from core.request_ids import REQUEST_ID

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# What every LogRecord has; any other attribute came from a call's `extra` and goes into the
# JSON line as a field of its own.
# (uvicorn adds a `color_message` for its own terminal output.)
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def configure_logging(level: str, log_format: str = "auto", stream: TextIO | None = None) -> None:
    """Log at `level` to `stream` (stderr) as `log_format`: "json", "text", or "auto" (JSON
    unless the stream is a terminal)."""
    stream = stream or sys.stderr
    use_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(_with_request_id)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _with_request_id(record: logging.LogRecord) -> bool:
    """Give the record the id of the request being served, if any (the filter runs where the
    line is logged, in the request's context)."""
    if not hasattr(record, "request_id"):
        record.request_id = REQUEST_ID.get()
    return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{line} [request {request_id}]" if request_id else line


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message"}, then "request_id" when there is one, any
    `extra` fields, and "exception" with the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and value not in ("", None):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
