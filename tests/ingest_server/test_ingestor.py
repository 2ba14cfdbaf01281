from __future__ import annotations

from core.errors import FieldViolation
from ingest_server.ingestor import BatchOutcome, Outcome

MISSING_PATH = (FieldViolation("path", "is required"),)


def test_a_batch_outcome_counts_accepted_and_rejected_events() -> None:
    outcome = BatchOutcome(["e-1", "", "e-3"], {1: MISSING_PATH})

    assert (outcome.accepted_count, outcome.rejected_count) == (2, 1)


def test_a_batch_outcome_reports_every_event_under_its_index_from_the_first() -> None:
    outcome = BatchOutcome(["e-1", "", "e-3"], {1: MISSING_PATH}, first_index=500)

    assert list(outcome.outcomes()) == [
        Outcome(500, event_id="e-1"),
        Outcome(501, violations=MISSING_PATH),
        Outcome(502, event_id="e-3"),
    ]


def test_a_batch_outcome_lists_its_rejected_events_in_order() -> None:
    outcome = BatchOutcome(["", "e-2", ""], {0: MISSING_PATH, 2: MISSING_PATH}, first_index=10)

    assert list(outcome.rejected()) == [
        Outcome(10, violations=MISSING_PATH),
        Outcome(12, violations=MISSING_PATH),
    ]
