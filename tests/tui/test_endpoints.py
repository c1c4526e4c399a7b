"""Runs on the openai backend: each endpoint's figures summed over the workers, in the monitor
(a table shown only when a run has endpoints), in `harness status`, and at rest once a run ends."""

from __future__ import annotations

from harness.records import EndpointStats
from harness.rundir.progress import endpoint_totals, fold_events
from harness.status.build import build_status
from harness.status.render import render
from tests.tui.builders import T0, append, end, progress, start
from tui.app import MonitorApp
from tui.widgets import EndpointTable

A, B = "http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"


def _ep(url: str, **kw) -> EndpointStats:
    base = dict(url=url, in_flight=3, requests=100, requests_per_s=2.0, tokens_per_s=50.0,
                transport_retries=4, rate_limited=1, failures=5, latency_p50_s=0.2, latency_p95_s=0.9)
    return EndpointStats(**(base | kw))


def _events():
    return [
        start(0, worker=0, gpu=None), start(0, worker=1, gpu=None),
        progress(10, 3, worker=0, gpu=None, endpoints=[_ep(A), _ep(B, resting=True)]),
        progress(10, 4, worker=1, gpu=None, endpoints=[_ep(A, latency_p95_s=1.5, in_flight=2)]),
    ]


def test_endpoints_add_up_over_the_workers():
    workers = fold_events(_events()).values()
    a, b = endpoint_totals(workers)
    assert (a.url, a.in_flight, a.requests, a.requests_per_s, a.transport_retries, a.rate_limited) == (
        A, 5, 200, 4.0, 8, 2)
    assert a.latency_p95_s == 1.5 and a.latency_p50_s == 0.2 and b.resting and not a.resting


def test_an_ended_run_shows_no_requests_in_flight_and_no_rates():
    workers = fold_events([*_events(), end(20, 3, worker=0, gpu=None), end(20, 4, worker=1, gpu=None)])
    a, b = endpoint_totals(workers.values())
    assert (a.in_flight, a.requests_per_s, a.tokens_per_s, b.resting) == (0, 0.0, 0.0, False)
    assert a.requests == 200 and a.transport_retries == 8  # the counts stay
    assert all(w.progress.in_flight == 0 for w in workers.values())


def test_status_has_an_endpoints_table(tmp_path):
    run = tmp_path / "api-run"
    append(run / "events.jsonl", *_events())
    status = build_status(run, now=T0 + 12)
    [games] = status.experiments
    assert [e.url for e in games.endpoints] == [A, B]
    text = render(status)
    assert "| endpoint | in flight | requests | requests/s |" in text
    assert f"| {A} | 5 | 200 | 4.00 | 100.0 | 8 | 2 | 200 ms | 1500 ms | no |" in text


async def test_the_monitor_shows_the_table_only_for_endpoint_runs(tmp_path):
    api, local = tmp_path / "api", tmp_path / "local"
    append(api / "events.jsonl", *_events())
    append(local / "events.jsonl", start(0), progress(10, 3))
    for run, shown in ((api, True), (local, False)):
        app = MonitorApp([run], clock=lambda: T0 + 12, follow=False)
        async with app.run_test() as pilot:
            app.poll_now()
            await pilot.pause()
            table = app.query_one(EndpointTable)
            assert table.display is shown
            if shown:
                assert [e.url for _, e in app.view.endpoints] == [A, B]
