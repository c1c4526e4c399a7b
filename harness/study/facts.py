"""What the files say about each experiment: the facts `harness status` judges, read once.

Two kinds of directory give the same facts. A study directory (`layout.StudyDir`): the experiments
of its study.toml, their state on record (study-events.jsonl), their events (STUDY/NAME/events.jsonl)
and logs. A single run directory: its games pass and each SAE pass under RUN/sae/*, all sharing
RUN/events.jsonl, told apart by the events' `kind`. Only reading here; the judging is in
`harness.study.diagnose`, so it is tested without files or a clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from harness.errors import RunDirError
from harness.records import Event, read_event
from harness.rundir.files import OLD_PASS_NAMES
from harness.rundir.jsonl import complete_lines
from harness.rundir.progress import WorkerKey, WorkerState, fold_events
from harness.rundir.store import EVENTS_FILE, GAMES_FILE
from harness.study.layout import STATUS_JSON, STATUS_MD, ExperimentEvent, StudyDir, last_error_line, log_tail

ProcessState = Literal["alive", "stopped", "gone"]

#: The pass kind (`Event.kind`) each experiment kind writes its events with.
PASS_KIND = {"games": "games", "sae-train": "train", "sae-features": "features",
             "sae-pathway": "pathway", "sae-patch": "patch", "sae-words": "words"}
#: SAE output folders of a run directory (RUN/sae/NAME, the commands' default --out) and their kind.
SAE_FOLDERS = {"train": "sae-train", "features": "sae-features", "pathway": "sae-pathway",
               "patch": "sae-patch", "patching": "sae-patch", "words": "sae-words"}
#: The report's own files, not an experiment's outputs.
REPORT_FILES = (STATUS_MD, STATUS_JSON, STATUS_MD + ".tmp", STATUS_JSON + ".tmp")


@dataclass
class Output:
    """A file (or a folder, its files summed) an experiment wrote."""

    path: str
    bytes: int


@dataclass
class ExperimentFacts:
    """Everything read about one experiment (or one pass of a run directory)."""

    name: str
    kind: str
    folder: Path
    workers: list[WorkerState] = field(default_factory=list)
    recorded: ExperimentEvent | None = None
    """The experiment's last ExperimentEvent (its state on record); None outside a study."""
    processes: dict[int, ProcessState] = field(default_factory=dict)
    """The recorded pid's and the workers' pids, as found now."""
    command: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    log: Path | None = None
    log_bytes: int | None = None
    log_mtime: float | None = None
    log_error: str | None = None
    outputs: list[Output] = field(default_factory=list)
    bad_event_lines: int = 0


def process_state(pid: int) -> ProcessState:
    """Whether `pid` lives on this host: 'stopped' (SIGSTOP, a debugger), 'alive', or 'gone' (a
    zombie counts as gone: it has exited, its parent just has not reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return "gone" if state in ("Z", "X") else "stopped" if state in ("T", "t") else "alive"
    except (FileNotFoundError, IndexError):
        pass
    except OSError:
        return "alive"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


def read_events(path: Path) -> tuple[list[Event], int]:
    """Every readable event line of a file and the number of unreadable ones (a tolerant reader:
    a torn last line, a damaged line or one of a newer major version is counted, never raised)."""
    events: list[Event] = []
    bad = 0
    for line in complete_lines(path):
        if line is None or not line.strip():
            continue
        try:
            events.append(read_event(line))
        except (ValidationError, RunDirError, ValueError):
            bad += 1
    return events, bad


def log_facts(path: Path) -> tuple[int | None, float | None, str | None]:
    """(size, mtime, last error line) of a log; Nones when it does not exist."""
    tail = log_tail(path)
    if tail is None:
        return None, None, None
    st, lines = tail
    return st.st_size, st.st_mtime, last_error_line(lines)


def list_outputs(folder: Path, skip: tuple[str, ...] = ()) -> list[Output]:
    """The files of `folder` with their sizes; a sub-folder is one entry, its files summed."""
    out: list[Output] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.name in skip or p.name.startswith("."):
            continue
        try:
            if p.is_dir():
                size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                out.append(Output(f"{p.name}/", size))
            else:
                out.append(Output(p.name, p.stat().st_size))
        except OSError:
            continue  # removed while listed
    return out


def _processes(recorded: ExperimentEvent | None, workers: list[WorkerState]) -> dict[int, ProcessState]:
    pids = {w.pid for w in workers if w.pid is not None}
    if recorded is not None and recorded.pid is not None:
        pids.add(recorded.pid)
    return {pid: process_state(pid) for pid in sorted(pids)}


def pass_workers(workers: dict[WorkerKey, WorkerState], kind: str) -> list[WorkerState]:
    """The workers of an experiment kind's pass: those of its pass kind, or, when none is (a kind
    without its own pass kind), every worker of its events file."""
    mine = [w for (k, _), w in sorted(workers.items()) if OLD_PASS_NAMES.get(k, k) == PASS_KIND.get(kind)]
    return mine or [w for _, w in sorted(workers.items())]


def study_facts(study: StudyDir, names: list[str], kinds: dict[str, str]) -> list[ExperimentFacts]:
    """The facts of each experiment of a study directory, in the study file's order (`names`),
    then any experiment the records name that the study file does not."""
    recorded = study.last_events()
    order = names + [n for n in recorded if n not in names]
    found = []
    for name in order:
        rec = recorded.get(name)
        kind = kinds.get(name) or (rec.kind if rec is not None else "?")
        folder = study.experiment_dir(name)
        events, bad = read_events(folder / EVENTS_FILE)
        workers = pass_workers(fold_events(events), kind)
        size, mtime, error = log_facts(study.log_path(name))
        found.append(ExperimentFacts(
            name=name, kind=kind, folder=folder, workers=workers, recorded=rec,
            processes=_processes(rec, workers), command=rec.command if rec is not None else [],
            devices=rec.devices if rec is not None else [], log=study.log_path(name), log_bytes=size,
            log_mtime=mtime, log_error=error, outputs=list_outputs(folder), bad_event_lines=bad,
        ))
    return found


def run_facts(run_dir: Path, argv: list[str]) -> list[ExperimentFacts]:
    """A run directory's passes: its games (when it has games or games events), then each SAE
    folder under RUN/sae/ and each pass kind found only in its events."""
    events, bad = read_events(run_dir / EVENTS_FILE)
    workers = fold_events(events)
    by_kind: dict[str, list[WorkerState]] = {}
    for (kind, _), w in sorted(workers.items()):
        by_kind.setdefault(OLD_PASS_NAMES.get(kind, kind), []).append(w)  # an older run's names too
    passes: dict[str, tuple[str, Path]] = {}
    if (run_dir / GAMES_FILE).exists() or "games" in by_kind:
        passes["games"] = ("games", run_dir)
    sae = run_dir / "sae"
    order = list(SAE_FOLDERS)  # the pipeline's order: train, features, pathway, patch, words
    folders = sorted(sae.iterdir(), key=lambda p: (order.index(p.name) if p.name in order else 99, p.name)) \
        if sae.is_dir() else []
    for folder in folders:
        if folder.is_dir():
            passes[f"sae/{folder.name}"] = (SAE_FOLDERS.get(folder.name, f"sae-{folder.name}"), folder)
    for pass_kind in by_kind:
        kind = next((k for k, p in PASS_KIND.items() if p == pass_kind), pass_kind)
        if not any(k == kind for k, _ in passes.values()):
            passes[kind] = (kind, sae / pass_kind)
    found = []
    for name, (kind, folder) in passes.items():
        mine = by_kind.get(PASS_KIND.get(kind, ""), [])
        skip = ("sae", *REPORT_FILES) if folder == run_dir else ()
        found.append(ExperimentFacts(
            name=name, kind=kind, folder=folder, workers=mine, processes=_processes(None, mine),
            command=argv if kind == "games" else [], outputs=list_outputs(folder, skip),
            bad_event_lines=bad if kind == "games" else 0,
        ))
    return found
