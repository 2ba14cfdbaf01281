"""What checking access costs a request, in-process: finding the credential a request presents
(SHA-256 of the secret, a lookup among many grants, the constant-time compare), the per-site
check of a request's events, and the backfill check of a keyless event.

    python -m bench.access_cost                  # 10000 grants, batches of 1 and 500 events

It measures the code the doors call, not a server: compare the microseconds with what a request
costs as a whole (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from analytics.v1.event_pb2 import Event

from core.access import INGEST_KEY, Grant, IngestAccess, identify, new_secret
from core.access import secret_hash as hashed
from core.events import backfill_violations
from ingest_server.ingestor import authorize


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.access_cost", description=__doc__)
    parser.add_argument("--grants", type=int, default=10_000, help="valid credentials held")
    arguments = parser.parse_args()
    secrets = [new_secret(INGEST_KEY) for _ in range(arguments.grants)]
    grants = {
        hashed(secret): Grant(f"cred_{n}", INGEST_KEY, (f"site-{n}",), False, hashed(secret))
        for n, secret in enumerate(secrets)
    }
    secret = secrets[len(secrets) // 2]
    site = f"site-{len(secrets) // 2}"
    access = IngestAccess(grants[hashed(secret)], browser=False, ingest_open=False)
    batch = [Event(site_id=site, event_type="page_view", path="/") for _ in range(500)]
    event = batch[0]
    event.timestamp.FromDatetime(datetime.now(UTC))
    earliest = int((datetime.now(UTC) - timedelta(days=2)).timestamp())

    print(f"{arguments.grants} grants held")
    _report("identify a presented secret", lambda: identify(secret, grants))
    _report("check the sites of a 1-event request", lambda: authorize(access, batch[:1], None))
    _report("check the sites of a 500-event request", lambda: authorize(access, batch, None))
    _report("backfill check of one keyless event", lambda: backfill_violations(event, earliest, 2))


def _report(what: str, work: Callable[[], object]) -> None:
    runs, _ = timeit.Timer(work).autorange()
    best = min(timeit.repeat(work, number=runs, repeat=5)) / runs
    print(f"{what:<42} {best * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
