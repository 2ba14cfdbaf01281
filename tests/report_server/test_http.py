"""The report service's HTTP door: Stats as the seeds' JSON."""

from __future__ import annotations

from analytics.v1.report_pb2 import PathViews, Stats

from report_server.http import stats_to_json


def test_stats_have_the_seed_shape() -> None:
    stats = Stats(
        site_id="s",
        date="2025-11-14",
        total_views=3,
        unique_users=2,
        top_paths=[PathViews(path="/a", views=2), PathViews(path="/b", views=1)],
        start_date="2025-11-14",
        end_date="2025-11-14",
    )

    assert stats_to_json(stats) == {
        "site_id": "s",
        "date": "2025-11-14",
        "start_date": "2025-11-14",
        "end_date": "2025-11-14",
        "total_views": 3,
        "unique_users": 2,
        "top_paths": [{"path": "/a", "views": 2}, {"path": "/b", "views": 1}],
    }


def test_all_time_stats_have_null_dates() -> None:
    body = stats_to_json(Stats(site_id="s"))

    assert (body["date"], body["start_date"], body["end_date"]) == (None, None, None)
