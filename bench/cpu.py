"""Where the CPU went during a measurement: cores used by each process group (a service, NATS,
PostgreSQL with all its backends, the load generator), from /proc. On a 2-core machine this
says which part was saturated, i.e. what limited the figure."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")

PidGroup = Callable[[], list[int]]


def _cpu_seconds(pid: int) -> float:
    """CPU time of the process and of its children that have exited and been waited for
    (so PostgreSQL's group counts the backends that came and went during the measurement)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[0] is the state (field 3 of proc(5)); utime, stime, cutime and cstime are 14-17.
    return sum(int(value) for value in fields[11:15]) / _TICKS


def _rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _parent_of(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    return int(fields[1])


def process_tree(root: int) -> list[int]:
    """`root` and its direct children (PostgreSQL: the postmaster and every backend)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent_of(int(entry.name)) == root:
            pids.append(int(entry.name))
    return pids


def find_process(argument: str) -> int | None:
    """The pid of a process with `argument` among its command-line arguments."""
    wanted = argument.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in arguments:
            return int(entry.name)
    return None


@dataclass
class CpuUse:
    """Cores used per group over one measurement."""

    cores: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{name} {cores:.2f}" for name, cores in self.cores.items() if cores >= 0.01]
        return ", ".join(parts) + f" cores (of {os.cpu_count()})"


class CpuMeter:
    """Measures the CPU of `groups`, and of this process (`harness`, e.g. the plain
    statement's client), from start() to stop(); `load_generator` names the CPU of the child
    processes this process waits for in between (wrk, the gRPC client, the loader's workers)."""

    def __init__(self, groups: dict[str, PidGroup], load_generator: str | None) -> None:
        self._groups = groups
        self._load_generator = load_generator
        self._pids: dict[str, list[int]] = {}
        self._before: dict[str, dict[int, float]] = {}
        self._children_before = self._own_before = self._started = 0.0

    def start(self) -> None:
        self._pids = {name: group() for name, group in self._groups.items()}
        self._before = {
            name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in self._pids.items()
        }
        self._children_before = _rusage_seconds(resource.RUSAGE_CHILDREN)
        self._own_before = _rusage_seconds(resource.RUSAGE_SELF)
        self._started = time.perf_counter()

    def stop(self) -> CpuUse:
        seconds = time.perf_counter() - self._started
        use = CpuUse()
        for name, group in self._groups.items():
            spent = 0.0
            for pid in set(group()) | set(self._pids[name]):
                spent += max(0.0, _cpu_seconds(pid) - self._before[name].get(pid, 0.0))
            use.cores[name] = spent / seconds
        if self._load_generator is not None:
            spent = _rusage_seconds(resource.RUSAGE_CHILDREN) - self._children_before
            use.cores[self._load_generator] = spent / seconds
        own = _rusage_seconds(resource.RUSAGE_SELF) - self._own_before
        use.cores["harness"] = own / seconds
        return use


@contextmanager
def measuring(groups: dict[str, PidGroup], load_generator: str | None) -> Iterator[CpuUse]:
    """CpuMeter over the block; the CpuUse yielded is filled in when the block ends."""
    meter = CpuMeter(groups, load_generator)
    use = CpuUse()
    meter.start()
    yield use
    use.cores.update(meter.stop().cores)
