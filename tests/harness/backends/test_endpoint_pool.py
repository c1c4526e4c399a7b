"""The endpoint pool against a real local HTTP server that injects every transport fault: each is
retried and counted, never returned as an answer; a dead endpoint's requests go to the live one;
with none left, one line names them all; a bad request is one line at once; the key is in no text."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.backends.endpoint_pool import AllEndpointsDown, EndpointPool, _Window, percentile, retry_after_s
from harness.errors import BackendError
from tests.harness.backends.fault_server import FaultServer

KEY = "sk-test-pool-6d1f0c"


def _pool(*urls: str, retries: int = 6, timeout: float = 0.5, **kw) -> EndpointPool:
    return EndpointPool(list(urls), api_key=KEY, max_connections=8, timeout_s=timeout,
                        max_transport_retries=retries, **kw)


def _ask(pool: EndpointPool, n: int = 1):
    async def go():
        try:
            return await asyncio.gather(*(
                pool.chat(model="m", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=8)
                for i in range(n)))
        finally:
            await pool.aclose()
    return asyncio.run(go())


@pytest.fixture
def server():
    servers: list[FaultServer] = []

    def make(**kw) -> FaultServer:
        s = FaultServer(**kw).start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        try:
            s.stop()
        except Exception:
            pass


@pytest.mark.parametrize("fault", ["429", "500", "503", "slow", "malformed", "reset"])
def test_each_transport_fault_is_retried_counted_and_never_an_answer(server, fault):
    srv = server(faults=lambda n, body: fault if n == 0 else None, slow_s=1.5)
    pool = _pool(srv.url)
    [reply] = _ask(pool)
    assert reply.transport_retries == 1
    assert reply.body["choices"][0]["message"]["content"].endswith("Final Decision: Stop")
    assert srv.outcomes == [fault, "ok"]
    [stats] = pool.stats()
    assert stats.transport_retries == 1 and stats.failures == 1 and stats.requests == 1
    assert stats.rate_limited == (1 if fault == "429" else 0)


def test_an_empty_content_is_an_answer_for_the_guard_not_a_transport_fault(server):
    srv = server(faults=lambda n, body: "empty")
    [reply] = _ask(_pool(srv.url))
    assert reply.transport_retries == 0 and reply.body["choices"][0]["message"]["content"] == ""


def test_retry_after_is_honoured(server):
    srv = server(faults=lambda n, body: "429" if n == 0 else None, retry_after_s=0.6)
    _ask(_pool(srv.url))
    assert srv.answer_times[1] - srv.fault_times[0] >= 0.6


def test_an_endpoint_that_dies_mid_run_loses_nothing_the_other_answers(server):
    a, b = server(), server()
    pool = _pool(a.url, b.url, retries=8)

    async def go():
        first = await asyncio.gather(*(pool.chat(model="m", messages=[{"role": "user", "content": "x"}])
                                       for _ in range(10)))
        a.stop()
        second = await asyncio.gather(*(pool.chat(model="m", messages=[{"role": "user", "content": "y"}])
                                        for _ in range(20)))
        stats = pool.stats()
        await pool.aclose()
        return first, second, stats

    first, second, stats = asyncio.run(go())
    assert len(first) == 10 and len(second) == 20
    assert {r.endpoint for r in second} == {b.url}
    assert len(b.received) + len(a.received) == 30  # a request the dead endpoint refused was never received
    assert sum(r.transport_retries for r in second) >= 1
    assert stats[0].failures >= 1


def test_every_endpoint_down_is_one_line_naming_them(server):
    a, b = server(), server()
    a.stop()
    b.stop()
    pool = _pool(a.url, b.url, retries=3)
    with pytest.raises(AllEndpointsDown) as err:
        _ask(pool)
    line = str(err.value)
    assert "\n" not in line and a.url in line and b.url in line and KEY not in line


def test_a_bad_request_is_one_line_at_once_without_the_key(server):
    srv = server(api_key="another-key")
    pool = _pool(srv.url)
    with pytest.raises(BackendError) as err:
        _ask(pool)
    assert not isinstance(err.value, AllEndpointsDown)
    assert "HTTP 401" in str(err.value) and KEY not in str(err.value) and "\n" not in str(err.value)
    assert len(srv.received) == 0  # refused before it counted: one try, no repeat


def test_the_key_goes_in_the_header_only(server):
    srv = server()
    _ask(_pool(srv.url))
    assert srv.headers_seen[0]["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(srv.received)


def test_requests_go_to_the_endpoint_with_fewest_in_flight(server):
    a, b = server(faults=lambda n, body: "slow"), server()
    a.slow_s = 0.3
    pool = _pool(a.url, b.url, timeout=2.0)
    replies = _ask(pool, n=6)
    assert {r.endpoint for r in replies} == {a.url, b.url}


def test_requests_per_minute_waits_when_the_budget_is_spent():
    window = _Window(2)
    now = time.monotonic()
    window.charge(1, now)
    assert window.wait_s(now) == 0.0
    window.charge(1, now)
    assert 59.0 < window.wait_s(now) <= 60.0
    assert window.wait_s(now + 61) == 0.0
    assert _Window(None).wait_s(now) == 0.0


def test_retry_after_headers_and_percentiles():
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_s(None) is None
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
