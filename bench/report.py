"""The results table: one row per figure with its target, its ratio to the reference where the
issue asks for one, and a verdict; rendered as markdown, printed and written to
bench/results/."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOGS_DIR = RESULTS_DIR / "logs"

PASS = "pass"
FAIL = "FAIL"
INFO = "info"
REFERENCE = "reference"
ERROR = "ERROR"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


def millis(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str
    ratio: str = ""
    verdict: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    # Every run's value of each figure, for the notes under the table.
    runs: dict[str, list[str]] = field(default_factory=dict)
    # Where the CPU went during the last run of each measurement.
    cpu: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def record_runs(self, figure: str, values: Sequence[str]) -> None:
        self.runs[figure] = list(values)

    def error(self, figure: str, target: str, problem: str) -> None:
        self.add(Row(figure, f"error: {problem}", target, verdict=ERROR))

    def render(self, header: Sequence[str]) -> str:
        lines = [*header, ""]
        lines.append("| figure | measured | target | ratio to reference | verdict |")
        lines.append("| --- | --- | --- | --- | --- |")
        for row in self.rows:
            cells = (row.figure, row.measured, row.target, row.ratio, row.verdict)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        failed = sum(row.verdict in (FAIL, ERROR) for row in self.rows)
        passed = sum(row.verdict == PASS for row in self.rows)
        lines += ["", f"Verdicts: {passed} pass, {failed} FAIL or ERROR."]
        if self.runs:
            lines += ["", "Every run (the table shows the median):", ""]
            lines += [f"- {figure}: {', '.join(values)}" for figure, values in self.runs.items()]
        if self.cpu:
            lines += ["", "Where the CPU went (cores busy during the last run of each):", ""]
            lines += [f"- {what}: {use}" for what, use in self.cpu.items()]
        if self.notes:
            lines += ["", "Notes:", ""]
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    @property
    def failed(self) -> bool:
        return any(row.verdict in (FAIL, ERROR) for row in self.rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_results(text: str, started: datetime) -> Path:
    """Write the table to bench/results/<UTC time>.md and bench/results/latest.md."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text)
    (RESULTS_DIR / "latest.md").write_text(text)
    return path
