"""Request ids: the client's when sane, else one made here."""

from __future__ import annotations

import pytest

from core.request_ids import new_request_id, request_id_from


def test_a_sane_id_given_by_the_client_is_kept() -> None:
    assert request_id_from(b"0b7c2a9e-4f1d-4c55-9d1e-2f7a3b8c6d10") == (
        "0b7c2a9e-4f1d-4c55-9d1e-2f7a3b8c6d10"
    )


@pytest.mark.parametrize(
    "given", [b"", b"has space", b"x" * 129, "caf\u00e9".encode(), b"line\nbreak", b'"quoted"']
)
def test_an_id_that_is_not_sane_is_replaced_by_a_new_one(given: bytes) -> None:
    made = request_id_from(given)

    assert made != given.decode("latin-1")
    assert len(made) == 20


def test_no_id_given_makes_a_new_one() -> None:
    assert request_id_from(None) != request_id_from(None)


def test_ids_made_in_one_process_are_distinct() -> None:
    made = [new_request_id() for _ in range(10_000)]

    assert len(set(made)) == len(made)
