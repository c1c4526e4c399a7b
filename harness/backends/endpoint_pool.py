"""Requests to one or several OpenAI-compatible endpoints, with transport faults kept apart from
answers.

One `openai.AsyncOpenAI` client per base URL (the official package's connection handling and
timeout; its own retries are off so that every repeat is ours, counted and free to move to another
endpoint). A request goes to the live endpoint with the fewest requests in flight. A 429 (its
Retry-After honoured), a 5xx, a timeout, a reset or refused connection, or a body that is no
completion is a transport fault: the request is sent again with backoff, and an endpoint that
fails several times in a row rests while the others take its requests. Any other 4xx is a bad
request, one line at once. The key is only ever in the clients' headers: no message carries it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import BackendDied
from harness.errors import BackendError
from harness.records import EndpointStats

#: Faults in a row after which an endpoint rests, and how long the first and the longest rest last.
FAILS_BEFORE_REST = 3
REST_S = (1.0, 30.0)
#: Backoff of a repeated request: the first wait and the cap, seconds (with jitter).
BACKOFF_S = (0.25, 8.0)
#: Latencies kept per endpoint for the p50 / p95 figures.
LATENCY_WINDOW = 1000


class AllEndpointsDown(BackendDied):
    """No endpoint answered a request within its retries: the run ends `failed`, a rerun resumes."""


class TransportFault(Exception):
    """One failed attempt that is not an answer (the request may be sent again)."""

    def __init__(self, what: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(what)
        self.what, self.retry_after, self.rate_limited = what, retry_after, rate_limited


@dataclass
class Reply:
    """An answer and what it took to get it."""

    body: dict[str, Any]
    endpoint: str
    transport_retries: int
    latency_s: float


@dataclass
class _Endpoint:
    url: str
    client: Any
    in_flight: int = 0
    requests: int = 0
    tokens: int = 0
    transport_retries: int = 0
    rate_limited: int = 0
    failures: int = 0
    fails_in_row: int = 0
    resting_until: float = 0.0
    last_fault: str = ""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    # what stats() saw last time, for the rates over the interval
    seen: tuple[float, int, int] = (0.0, 0, 0)

    def resting(self, now: float) -> bool:
        return now < self.resting_until

    def failed(self, fault: TransportFault, now: float) -> None:
        self.failures += 1
        self.fails_in_row += 1
        self.last_fault = fault.what
        if fault.rate_limited:
            self.rate_limited += 1
        if fault.retry_after is not None:
            self.resting_until = max(self.resting_until, now + fault.retry_after)
        elif self.fails_in_row >= FAILS_BEFORE_REST:
            rest = min(REST_S[0] * 2 ** (self.fails_in_row - FAILS_BEFORE_REST), REST_S[1])
            self.resting_until = max(self.resting_until, now + rest)


class _Window:
    """A sliding one-minute budget (requests or tokens) shared by all endpoints."""

    def __init__(self, per_minute: float | None):
        self.per_minute = per_minute
        self.spent: deque[tuple[float, float]] = deque()

    def _used(self, now: float) -> float:
        while self.spent and self.spent[0][0] <= now - 60.0:
            self.spent.popleft()
        return sum(amount for _, amount in self.spent)

    def wait_s(self, now: float) -> float:
        """Seconds until the budget has room again (0: now)."""
        if self.per_minute is None or self._used(now) < self.per_minute:
            return 0.0
        return max(self.spent[0][0] + 60.0 - now, 0.01)

    def charge(self, amount: float, now: float) -> None:
        if self.per_minute is not None and amount > 0:
            self.spent.append((now, amount))


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def retry_after_s(headers: Any) -> float | None:
    """Seconds a 429 or 503 asks to wait: `retry-after-ms`, or `Retry-After` in seconds (a date is
    not honoured: backoff applies)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / scale, 0.0)
        except ValueError:
            continue
    return None


def classify(error: BaseException) -> TransportFault | BackendError:
    """A failed attempt as a transport fault (sent again) or a bad request (one line, at once)."""
    import openai

    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            return TransportFault("429 Too Many Requests", retry_after_s(error.response.headers), True)
        if status >= 500 or status in (408, 409):
            return TransportFault(f"HTTP {status}", retry_after_s(error.response.headers))
        return BackendError(f"the endpoint refused the request: HTTP {status}: {_server_message(error)}")
    if isinstance(error, openai.APITimeoutError):
        return TransportFault("timed out")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return TransportFault(f"connection failed ({type(cause).__name__})")
    if isinstance(error, (openai.APIResponseValidationError, ValueError)):
        return TransportFault("malformed answer")
    return TransportFault(f"{type(error).__name__}")


def _server_message(error: Any) -> str:
    """The server's own message of an error answer, one line, without anything from the request."""
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or getattr(error, "message", "") or "")
    return " ".join(text.split())[:300]


class EndpointPool:
    """Endpoints behind one interface: `chat(...)` and `completions(...)` return a `Reply`."""

    def __init__(self, base_urls: list[str], *, api_key: str | None, max_connections: int, timeout_s: float,
                 max_transport_retries: int, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None):
        import openai

        self.timeout_s = timeout_s
        self.max_retries = max_transport_retries
        self.max_connections = max_connections  # requests in flight per endpoint: ours to bound
        self.endpoints = [
            _Endpoint(url, openai.AsyncOpenAI(base_url=url, api_key=api_key or "none", max_retries=0,
                                              timeout=timeout_s))
            for url in base_urls
        ]
        self.requests_window = _Window(requests_per_minute)
        self.tokens_window = _Window(tokens_per_minute)
        self._changed = asyncio.Condition()

    async def chat(self, **create_kwargs: Any) -> Reply:
        return await self._send(lambda client: client.chat.completions.create(**create_kwargs))

    async def completions(self, **create_kwargs: Any) -> Reply:
        return await self._send(lambda client: client.completions.create(**create_kwargs))

    async def models(self) -> list[dict[str, Any]]:
        """The served models, from the first endpoint that answers."""
        reply = await self._send(lambda client: client.models.list(), needs_choices=False)
        return list(reply.body.get("data") or [])

    def describe(self) -> str:
        """Every endpoint with its last fault, for the line that ends a run."""
        return "; ".join(f"{e.url} ({e.last_fault or 'no answer'})" for e in self.endpoints)

    async def _pick(self) -> _Endpoint:
        """The live endpoint with the fewest in flight; waits while all are resting or full."""
        while True:
            now = time.monotonic()
            wait = max(self.requests_window.wait_s(now), self.tokens_window.wait_s(now))
            if wait == 0.0:
                live = [e for e in self.endpoints
                        if not e.resting(now) and e.in_flight < self.max_connections]
                if live:
                    chosen = min(live, key=lambda e: (e.in_flight, e.fails_in_row))
                    chosen.in_flight += 1
                    self.requests_window.charge(1, now)
                    return chosen
                wake = [e.resting_until - now for e in self.endpoints if e.resting(now)]
                wait = min(wake) if wake else 0.05
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=max(min(wait, 1.0), 0.01))
                except TimeoutError:
                    pass

    async def _release(self, endpoint: _Endpoint) -> None:
        endpoint.in_flight -= 1
        async with self._changed:
            self._changed.notify_all()

    async def _send(self, call: Any, needs_choices: bool = True) -> Reply:
        retries = 0
        started = time.monotonic()
        while True:
            endpoint = await self._pick()
            t0 = time.monotonic()
            try:
                body = await self._attempt(endpoint, call, needs_choices)
            except TransportFault as fault:
                endpoint.failed(fault, time.monotonic())
                await self._release(endpoint)
                retries += 1
                endpoint.transport_retries += 1
                if retries > self.max_retries:
                    raise AllEndpointsDown(
                        f"no endpoint answered after {retries} tries in {time.monotonic() - started:.0f} s: "
                        f"{self.describe()}"
                    ) from None
                backoff = min(BACKOFF_S[0] * 2 ** (retries - 1), BACKOFF_S[1])
                await asyncio.sleep(max(backoff * random.uniform(0.5, 1.0), fault.retry_after or 0.0)
                                    if len(self.endpoints) == 1 else backoff * random.uniform(0.1, 0.5))
                continue
            except BaseException:
                await self._release(endpoint)
                raise
            latency = time.monotonic() - t0
            endpoint.fails_in_row = 0
            endpoint.requests += 1
            endpoint.latencies.append(latency)
            used = (body.get("usage") or {}).get("total_tokens") or 0
            endpoint.tokens += (body.get("usage") or {}).get("completion_tokens") or 0
            self.tokens_window.charge(used, time.monotonic())
            await self._release(endpoint)
            return Reply(body, endpoint.url, retries, latency)

    @staticmethod
    async def _attempt(endpoint: _Endpoint, call: Any, needs_choices: bool) -> dict[str, Any]:
        try:
            response = await call(endpoint.client)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - sorted into transport faults and bad requests
            raise classify(e) from None
        body = response.model_dump() if hasattr(response, "model_dump") else response
        if not isinstance(body, dict) or (needs_choices and not body.get("choices")):
            raise TransportFault("malformed answer (no choices)")
        return body

    def stats(self) -> list[EndpointStats]:
        """Each endpoint's counters, with rates over the time since the previous call."""
        now = time.monotonic()
        out = []
        for e in self.endpoints:
            t, requests, tokens = e.seen
            dt = now - t if t else None
            lat = list(e.latencies)
            out.append(EndpointStats(
                url=e.url, in_flight=e.in_flight, requests=e.requests,
                requests_per_s=(e.requests - requests) / dt if dt else 0.0,
                tokens_per_s=(e.tokens - tokens) / dt if dt else 0.0,
                transport_retries=e.transport_retries, rate_limited=e.rate_limited, failures=e.failures,
                resting=e.resting(now), latency_p50_s=percentile(lat, 50), latency_p95_s=percentile(lat, 95),
            ))
            e.seen = (now, e.requests, e.tokens)
        return out

    @property
    def transport_retries(self) -> int:
        return sum(e.transport_retries for e in self.endpoints)

    @property
    def rate_limited(self) -> int:
        return sum(e.rate_limited for e in self.endpoints)

    async def aclose(self) -> None:
        for e in self.endpoints:
            try:
                await e.client.close()
            except Exception:  # noqa: BLE001 - closing what may be broken already
                pass
