"""status.md: a `StudyStatus` as Markdown, the summary table first, then one section per experiment."""

from __future__ import annotations

import datetime as dt

from harness.analysis.markdown import table
from harness.status.diagnose import span
from harness.status.model import ExperimentStatus, StudyStatus


def size(n: int | None) -> str:
    """'812 B', '4.0 KiB', '1.2 MiB', '3.4 GiB'."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def progress(e: ExperimentStatus) -> str:
    if e.total is None or e.done is None:
        return "–"
    return f"{e.done}/{e.total} ({e.percent:.1f} %)" if e.percent is not None else f"{e.done}/{e.total}"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def summary(s: StudyStatus) -> str:
    rows = [[e.name, e.kind, f"**{e.state}**" if e.state in ("stalled", "failed") else e.state, progress(e),
             ", ".join(e.devices) or "–", e.gpu_memory or "–", span(e.eta_s) if e.eta_s is not None else "–",
             _cell(e.note) or "–"] for e in s.experiments]
    header = ["experiment", "kind", "state", "progress", "device", "GPU memory", "ETA", "note"]
    return table(header, rows)


ENDPOINT_HEADER = ["endpoint", "in flight", "requests", "requests/s", "tokens/s", "transport retries", "429s",
                   "latency p50", "latency p95", "resting"]


def endpoint_row(e) -> list[str]:
    """One endpoint's figures as the status table and the monitor show them."""
    def ms(s: float | None) -> str:
        return "–" if s is None else f"{s * 1000:.0f} ms"
    return [e.url, str(e.in_flight), f"{e.requests:,}", f"{e.requests_per_s:.2f}", f"{e.tokens_per_s:.1f}",
            str(e.transport_retries), str(e.rate_limited), ms(e.latency_p50_s), ms(e.latency_p95_s),
            "yes" if e.resting else "no"]


def endpoints_table(endpoints) -> str:
    return table(ENDPOINT_HEADER, [endpoint_row(e) for e in endpoints])


def section(e: ExperimentStatus) -> str:
    lines = [f"## {e.name} ({e.kind}): {e.state}", ""]
    if e.state == "not started" and not e.outputs:  # nothing to show but why it waits
        lines += [f"- {e.note or 'not started yet'}", f"- run directory: `{e.folder}`"]
        return "\n".join(lines) + "\n"
    lines.append(f"- command: `{e.command}`" if e.command else "- command: –")
    lines.append(f"- run directory: `{e.folder}`")
    if e.log:
        lines.append(f"- log: `{e.log}` ({size(e.log_bytes)})" if e.log_bytes is not None
                     else f"- log: `{e.log}` (not written yet)")
    eta = f", ETA {span(e.eta_s)}" if e.eta_s is not None else ""
    lines.append(f"- progress: {progress(e)}{eta}")
    for w in e.workers if len(e.workers) > 1 else []:
        lines.append(f"  - worker {w.worker} ({w.gpu or 'cpu'}, pid {w.pid}): {w.status}, {w.done}/{w.total}")
    if e.endpoints:
        lines += ["", endpoints_table(e.endpoints).rstrip("\n"), ""]
    outputs = ", ".join(f"`{o.path}` {size(o.bytes)}" for o in e.outputs)
    lines.append(f"- outputs: {outputs or 'none yet'}")
    lines.append(f"- last error: {e.last_error}" if e.last_error else "- last error: none")
    for d in e.diagnoses:
        lines.append(f"- diagnosis: {d}")
    for h in e.headlines:
        lines += ["", f"**{h.title}**", ""]
        if h.text:
            lines += [h.text, ""]
        if h.header:
            lines.append(table(h.header, [[_cell(c) for c in r] for r in h.rows]).rstrip("\n"))
    return "\n".join(lines) + "\n"


def render(s: StudyStatus) -> str:
    when = dt.datetime.fromtimestamp(s.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = "study" if s.of == "study" else "run"
    head = [
        f"# Status of {what} {s.name}", "",
        f"`{s.directory}`, {when}. Stalled: no event for {s.stall_minutes:g} min while the process "
        "lives.", "",
        summary(s),
    ]
    return "\n".join(head) + "\n" + "\n".join(section(e) for e in s.experiments)
