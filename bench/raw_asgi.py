"""The HTTP ceiling reference: a raw ASGI handler for `POST /event` on uvicorn with uvloop and
httptools, parsing the body and writing the answer with orjson, and doing no I/O at all.

It answers what the real endpoint answers (202, `{"status":"accepted","event_id":...}`) so that
wrk does the same work against both. Run as `python -m bench.raw_asgi PORT`, with uvloop,
httptools and orjson importable (`make bench` installs them into .venv/bench-reference, apart
from the services, whose uvicorn would otherwise pick httptools up too).
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Imported by name: it lives in the reference-only directory, not in the services' venv.
orjson: Any = importlib.import_module("orjson")

_ids = itertools.count()
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    event = orjson.loads(body)
    event_id = event.get("event_id") or f"raw-{next(_ids)}"
    answer = orjson.dumps({"status": "accepted", "event_id": event_id})
    await send({"type": "http.response.start", "status": 202, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": answer})


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
