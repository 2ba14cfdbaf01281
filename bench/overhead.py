"""What a setting costs `POST /event`: ingest servers that differ only in their environment,
measured in one run, round after round, with wrk as `make bench` drives it.

    python -m bench.overhead                      # METRICS=1 against METRICS=0
    python -m bench.overhead --seconds 10 --rounds 5 on:METRICS=1 off:METRICS=0
    python -m bench.overhead --pace-ms 20       # the same offered rate for each: CPU a request

Each variant is `NAME:VAR=VALUE,VAR=VALUE`; the first is compared with each other. Every
server runs with the bench's API_PROCESSES=2 against one embedded NATS server, all started
before the first round and idle while another is measured. Needs wrk.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import OPEN_ACCESS, BenchError
from bench.cpu import measuring, process_tree
from bench.dataset import EventFactory, TrafficShape, recent_window
from bench.http_load import WrkResult, run_wrk, write_post_script
from bench.runner import HTTP_CONNECTIONS, WRK_THREADS
from devstack.embedded import EmbeddedNats, accepts_connections, free_port
from runtime.processes import ChildProcess

START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, assignments = text.partition(":")
        env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
        return cls(name, env)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("variants", nargs="*", default=["on:METRICS=1", "off:METRICS=0"])
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pace-ms",
        type=int,
        default=None,
        help="each connection waits this long after an answer: every variant gets the same "
        "offered rate, and the CPU a request is compared at equal load",
    )
    arguments = parser.parse_args()
    variants = [Variant.parse(text) for text in arguments.variants]
    with tempfile.TemporaryDirectory(prefix="analytics-overhead-") as root:
        sys.exit(_run(Path(root), variants, arguments.seconds, arguments.rounds, arguments.pace_ms))


def _run(
    root: Path, variants: list[Variant], seconds: float, rounds: int, pace_ms: int | None
) -> int:
    bodies = EventFactory(TrafficShape(), seed=3).json_bodies(200, *recent_window())
    script = write_post_script(root / "post_event.lua", bodies, pace_ms)
    results: dict[str, list[Measured]] = {variant.name: [] for variant in variants}
    with EmbeddedNats(root / "nats") as nats:
        servers: list[ChildProcess] = []
        try:
            urls, trees = {}, {}
            for number, variant in enumerate(variants):
                process, port = _start_ingest(root, nats.url, variant, number)
                servers.append(process)
                urls[variant.name] = f"http://127.0.0.1:{port}/event"
                trees[variant.name] = functools.partial(process_tree, process.pid or 0)
            for url in urls.values():  # warm up each
                run_wrk(
                    url, connections=HTTP_CONNECTIONS, threads=WRK_THREADS, seconds=3, script=script
                )
            for round_number in range(1, rounds + 1):
                for variant in variants:
                    with measuring({"ingest": trees[variant.name]}, "wrk") as cpu:
                        result = run_wrk(
                            urls[variant.name],
                            connections=HTTP_CONNECTIONS,
                            threads=WRK_THREADS,
                            seconds=seconds,
                            script=script,
                        )
                    measured = Measured(result, cpu.cores["ingest"])
                    results[variant.name].append(measured)
                    print(
                        f"round {round_number} {variant.name}: {result.rate:,.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                        f"{result.bad_responses + result.socket_errors} errors; ingest "
                        f"{measured.cores:.2f} cores, {measured.cpu_us:.1f} µs CPU a request",
                        flush=True,
                    )
        finally:
            for process in servers:
                process.stop()
    _report(variants, results)
    return 0


def _start_ingest(
    root: Path, nats_url: str, variant: Variant, number: int
) -> tuple[ChildProcess, int]:
    http, grpc = free_port(), free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "API_PROCESSES": "2",
        "HTTP_LISTEN": f"127.0.0.1:{http}",
        "GRPC_LISTEN": f"127.0.0.1:{grpc}",
        "STREAM_NAME": f"OVERHEAD_{number}",
        "SUBJECT_PREFIX": f"overhead.{number}",
        "LOG_LEVEL": "WARNING",
        **OPEN_ACCESS,
        **variant.env,
    }
    process = ChildProcess(f"ingest {variant.name}", signal.SIGTERM, root / f"{variant.name}.log")
    process.spawn([sys.executable, "-m", "ingest_server"], env=env)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not accepts_connections(http):
        process.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"ingest {variant.name} did not listen:\n{process.log_tail()}")
        time.sleep(0.1)
    return process, http


def _report(variants: list[Variant], results: dict[str, list[Measured]]) -> None:
    """Each variant's median rate and CPU per request; the first's against each other's,
    round by round (the rounds ran back to back, so they share the machine's moment)."""
    first = variants[0]
    print()
    for variant in variants:
        mine = results[variant.name]
        line = (
            f"{variant.name}: median {statistics.median(m.result.rate for m in mine):,.0f} "
            f"req/s, {statistics.median(m.cpu_us for m in mine):.1f} µs CPU a request"
        )
        if variant is not first:
            pairs = list(zip(results[first.name], mine, strict=True))
            rates = [a.result.rate / b.result.rate for a, b in pairs]
            costs = [a.cpu_us / b.cpu_us for a, b in pairs]
            line += (
                f"\n  {first.name} / {variant.name}: rate "
                + ", ".join(f"{ratio:.1%}" for ratio in rates)
                + f" (median {statistics.median(rates):.1%}); CPU a request "
                + ", ".join(f"{ratio:.1%}" for ratio in costs)
                + f" (median {statistics.median(costs):.1%})"
            )
        print(line)


@dataclass(frozen=True)
class Measured:
    result: WrkResult
    cores: float  # the ingest server's processes, during the run

    @property
    def cpu_us(self) -> float:
        """The ingest server's CPU per request answered, in microseconds."""
        return self.cores * self.result.seconds / max(1, self.result.requests) * 1e6


if __name__ == "__main__":
    main()
