"""`python -m bench.stream_bytes`: what an event costs in the JetStream stream, as the ingest
servers publish it (core.stream.encode_messages, a request id per event), in full 500-event
messages (a busy ingest server) and in 8-event ones (HTTP under moderate load packs about 7.5
per message, docs/benchmarks.md). Prints the stream's bytes (JetStream's own count: payload,
subject, headers and its per-message record) and the store directory's size on disk, per
event and per message. With STREAM_ARCHIVE_DAYS set the archive keeps the same bytes again.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import nats

from bench.dataset import EventFactory, recent_window
from core.event_ids import new_event_id
from core.stream import EventStream, encode_messages, ensure_stream, request_context
from devstack.embedded import EmbeddedNats


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_bytes", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="events per message size")
    events = parser.parse_args().events
    with (
        tempfile.TemporaryDirectory(prefix="stream-bytes-") as root,
        EmbeddedNats(Path(root)) as server,
    ):
        for per_message in (500, 8):
            asyncio.run(_measure(server.url, Path(root), events, per_message))


async def _measure(url: str, root: Path, total: int, per_message: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = EventStream(f"BYTES_{per_message}", f"bench.bytes{per_message}")
    await ensure_stream(js, stream)
    factory = EventFactory(seed=per_message)
    start, span = recent_window()
    received_at = datetime.now(UTC)
    for offset in range(0, total, per_message):
        count = min(per_message, total - offset)
        events = factory.events(count, start, span, [new_event_id() for _ in range(count)])
        contexts = [request_context(new_event_id())] * count
        for payload, message_id in encode_messages(events, received_at, contexts):
            await js.publish(stream.subject, payload, headers={"Nats-Msg-Id": message_id})
    state = (await js.stream_info(stream.name)).state
    await nc.close()
    on_disk = sum(
        path.stat().st_size
        for path in (root / "jetstream").rglob("*")
        if path.is_file() and f"/{stream.name}/" in str(path)
    )
    print(
        f"{per_message}-event messages: {state.messages:,} messages, {total:,} events; "
        f"stream bytes {state.bytes:,} = {state.bytes / total:,.0f} per event, "
        f"{state.bytes / state.messages:,.0f} per message; files {on_disk:,} bytes = "
        f"{on_disk / total:,.0f} per event"
    )


if __name__ == "__main__":
    main()
