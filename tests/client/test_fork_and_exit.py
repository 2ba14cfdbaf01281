"""The client in programs of their own, as a service runs it: across os.fork() and
multiprocessing's forked workers, and at exit without close()."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from typing import Any

import asyncpg

from runtime.serve import ApiServer
from tests.client.stored import counted_views, stored_count, stored_ids
from tests.client.test_client import unreachable_target
from tests.support.waiting import eventually
from writer.service import RunningWriter

FORKING_PROGRAM = """
import dataclasses, json, multiprocessing, os, sys
from analytics_client import Client

client = Client(sys.argv[1], flush_interval=0.05)

def track(tag):
    return [client.track("site-1", "page_view", "/" + tag) for _ in range(50)]

def worker(results):
    results.put(track("worker"))  # and no close(): the worker ends through os._exit

out = {"before": track("before")}
assert client.flush(10)  # the thread and its channel are up when the process forks
read_end, write_end = os.pipe()
if os.fork() == 0:
    os.close(read_end)
    child = track("child")
    closed = client.close(10)
    report = {"child": child, "closed": closed, "stats": dataclasses.asdict(client.stats)}
    os.write(write_end, json.dumps(report).encode())
    os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as reading:
    out["in_child"] = json.load(reading)
os.wait()
context = multiprocessing.get_context("fork")
results = context.SimpleQueue()
process = context.Process(target=worker, args=(results,))
process.start()
out["worker"] = results.get()
process.join()
out["after"] = track("after")
out["closed"] = client.close(10)
print(json.dumps(out))
"""

EXITING_PROGRAM = """
import json, sys
from analytics_client import Client

client = Client(sys.argv[1], flush_interval=60)  # nothing is due before the exit
print(json.dumps([client.track("site-1", "page_view", "/") for _ in range(300)]))
"""

ASYNC_EXITING_PROGRAM = """
import asyncio, json, sys
from analytics_client import AsyncClient

client = AsyncClient(sys.argv[1], flush_interval=60)

async def main():
    return [await client.track("site-1", "page_view", "/") for _ in range(300)]

print(json.dumps(asyncio.run(main())))  # the loop ends, and the client is not closed
"""

UNREACHABLE_EXIT_PROGRAM = """
import logging, sys
from analytics_client import Client

logging.basicConfig(level=logging.WARNING, format="%(message)s")
client = Client(sys.argv[1], exit_timeout=0.5)
for _ in range(3):
    client.track("site-1", "page_view", "/")
"""


async def run_program(program: str, target: str) -> tuple[Any, str]:
    """Run `program` with the target as its argument; its JSON output and its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return (json.loads(out) if out.strip() else None), err.decode()


async def test_parent_child_and_forked_worker_each_send_their_own_events_once(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    out, _ = await run_program(FORKING_PROGRAM, str(api.grpc))

    # The child started with an empty queue: it sent its events and none of its parent's.
    assert (out["in_child"]["closed"], out["in_child"]["stats"]["sent"]) == (True, 50)
    assert out["closed"] is True
    every = out["before"] + out["in_child"]["child"] + out["worker"] + out["after"]
    await eventually(lambda: stored_count(db), 200)
    assert await stored_ids(db) == Counter(dict.fromkeys(every, 1))
    assert await counted_views(db) == 200


async def test_the_exit_hook_sends_what_a_client_still_holds(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    ids, _ = await run_program(EXITING_PROGRAM, str(api.grpc))

    await eventually(lambda: stored_count(db), 300)
    assert await stored_ids(db) == Counter(dict.fromkeys(ids, 1))


async def test_the_exit_hook_sends_what_an_async_client_still_holds_after_its_loop_ended(
    api: ApiServer, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    ids, _ = await run_program(ASYNC_EXITING_PROGRAM, str(api.grpc))

    await eventually(lambda: stored_count(db), 300)
    assert await stored_ids(db) == Counter(dict.fromkeys(ids, 1))


async def test_the_exit_hook_gives_up_after_exit_timeout_and_says_what_it_abandoned() -> None:
    _, stderr = await run_program(UNREACHABLE_EXIT_PROGRAM, unreachable_target())

    assert stderr.splitlines()[-1] == (
        "closed with 3 events unanswered after 0.5 s: abandoned (those sent may have been stored)"
    )
