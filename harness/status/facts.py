"""What the files say about each experiment: the facts `harness status` judges, read once.

Two kinds of directory give the same facts. A study directory (`layout.StudyDir`): the experiments
of its study.toml, their state on record (study-events.jsonl), their events (STUDY/NAME/events.jsonl)
and logs. A single run directory: its games pass and each SAE pass under RUN/sae/*, all sharing
RUN/events.jsonl, told apart by the events' `kind`. Only reading here; the judging is in
`harness.status.diagnose`, so it is tested without files or a clock.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from harness.errors import RunDirError
from harness.records import Event, read_event
from harness.rundir.files import (
    EVENTS_FILE,
    GAMES_FILE,
    LOCK_FILE,
    SAE_DIR,
    STATUS_JSON,
    STATUS_MD,
    sae_pass_dir,
)
from harness.rundir.jsonl import complete_lines
from harness.rundir.manifest import read_manifest
from harness.rundir.progress import WorkerKey, WorkerState, fold_events, pass_name
from harness.rundir.reader import GamesRead, RunFiles
from harness.study.kinds import KINDS, kind_of_pass, kind_of_sae_folder, pass_kind_of
from harness.study.layout import ExperimentEvent, StudyDir, last_error_line, log_tail

ProcessState = Literal["alive", "stopped", "gone"]

#: This machine: only its workers' pids mean something in the local /proc (a Ray worker's may not).
LOCAL_HOST = socket.gethostname()

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
    """The recorded pid's and the workers' pids, as found now: those on this machine only."""
    driver_pid: int | None = None
    """The process holding the run's lock (`harness.rundir.lock`), when it runs on this machine."""
    command: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    log: Path | None = None
    log_bytes: int | None = None
    log_mtime: float | None = None
    log_error: str | None = None
    outputs: list[Output] = field(default_factory=list)
    bad_event_lines: int = 0
    games: GamesRead | None = None
    """A games pass's games on disk, read as every reader of a run reads them; None for other kinds."""
    games_total: int | None = None
    """The games the run will hold when complete (its manifest), when known."""
    games_error: str | None = None
    """Why games.jsonl could not be read (a newer major version, an I/O error)."""


PID_MAX = 4_194_304
"""Linux's largest pid (`/proc/sys/kernel/pid_max` at most); a recorded pid beyond it is no process."""


def process_state(pid: int, since: float | None = None) -> ProcessState:
    """Whether `pid` is the recorded process and lives on this host: 'stopped' (SIGSTOP, a
    debugger), 'alive', or 'gone'. A zombie counts as gone (it has exited, its parent just has
    not reaped it), and so does pid 1, a pid out of range, a process that is no Python or harness,
    and one that started after `since` (the time the pid was recorded: the pid was reused)."""
    if not 1 < pid <= PID_MAX:
        return "gone"
    proc = Path(f"/proc/{pid}")
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X") or not _ours(proc) or _started_after(fields, since):
            return "gone"
        return "stopped" if fields[0] in ("T", "t") else "alive"
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    except OSError:
        return "alive"
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


def _ours(proc: Path) -> bool:
    """A Python process (or a `harness` entry point): the only kind that writes a run's events. A
    Ray actor retitles its process (`ray::WorkerActor`): still Python."""
    try:
        cmdline = (proc / "cmdline").read_bytes()
    except PermissionError:
        return True
    return b"python" in cmdline or b"harness" in cmdline or cmdline.startswith(b"ray::")


def _started_after(stat_fields: list[str], since: float | None) -> bool:
    """Whether the process of `/proc/PID/stat` started after `since` (by more than the clock's
    rounding). Its age is measured on the kernel's own clock (uptime minus its 22nd field, in
    clock ticks since boot), not as `btime` plus ticks: in a VM restored from a snapshot `btime`
    can drift seconds from the wall clock, which made a live process look newer than its record."""
    if since is None:
        return False
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    age = uptime - int(stat_fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - age > since + 2.0


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


def lock_holder(path: Path, locks: Path = Path("/proc/locks")) -> int | None:
    """The pid holding an flock on `path`, from the kernel's table (read only: taking the lock to
    test it could make a starting run fail). None: not held, or held from another machine."""
    try:
        st = path.stat()
        table = locks.read_text()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a process waiting for the lock, not holding it
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None


def local(worker: WorkerState) -> bool:
    """Whether the worker's pid is one of this machine's (events before hosts were written: yes)."""
    return worker.host is None or worker.host == LOCAL_HOST


def _processes(recorded: ExperimentEvent | None, workers: list[WorkerState]) -> dict[int, ProcessState]:
    recorded_at: dict[int, list[float]] = {}
    for pid, t in [(w.pid, w.start_time) for w in workers if local(w)] + (
        [(recorded.pid, recorded.time)] if recorded is not None else []
    ):
        if pid is not None:
            recorded_at.setdefault(pid, []).extend([t] if t else [])
    return {pid: process_state(pid, min(ts, default=None)) for pid, ts in sorted(recorded_at.items())}


def games_facts(kind: str, folder: Path) -> dict:
    """For a games pass: its games on disk (the one reader's policy) and its manifest's total, as
    ExperimentFacts fields; nothing for another kind or a folder without games yet."""
    files = RunFiles(folder)
    if kind != "games" or not files.games_path.exists():
        return {}
    try:
        manifest = read_manifest(folder)
    except RunDirError:
        manifest = None
    total = manifest.games_total if manifest is not None else None
    try:
        return {"games": files.games(), "games_total": total}
    except (RunDirError, OSError) as e:
        return {"games_total": total, "games_error": str(e)}


def pass_workers(workers: dict[WorkerKey, WorkerState], kind: str) -> list[WorkerState]:
    """The workers of an experiment kind's pass: those of its pass kind (an older name of it too),
    or, when none is (a kind without its own pass kind), every worker of its events file."""
    mine = [w for (k, _), w in sorted(workers.items()) if pass_name(k) == pass_kind_of(kind)]
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
            processes=_processes(rec, workers), driver_pid=lock_holder(folder / LOCK_FILE),
            command=rec.command if rec is not None else [],
            devices=rec.devices if rec is not None else [], log=study.log_path(name), log_bytes=size,
            log_mtime=mtime, log_error=error, outputs=list_outputs(folder), bad_event_lines=bad,
            **games_facts(kind, folder),
        ))
    return found


def _sae_folders(run_dir: Path) -> list[Path]:
    """The folders under RUN/sae/, the pipeline's passes first in its order, then any other."""
    sae = run_dir / SAE_DIR
    if not sae.is_dir():
        return []
    order = [k.name for k in KINDS.values()]

    def rank(p: Path) -> tuple[int, str]:
        row = kind_of_sae_folder(p.name)
        return (order.index(row.name) if row is not None else len(order), p.name)

    return sorted((p for p in sae.iterdir() if p.is_dir()), key=rank)


def run_facts(run_dir: Path, argv: list[str]) -> list[ExperimentFacts]:
    """A run directory's passes: its games (when it has games or games events), then each SAE
    folder under RUN/sae/ (an older name too: RUN/sae/patching) and each pass kind found only in
    its events."""
    events, bad = read_events(run_dir / EVENTS_FILE)
    by_pass: dict[str, list[WorkerState]] = {}
    for (pass_kind, _), w in sorted(fold_events(events).items()):
        by_pass.setdefault(pass_kind, []).append(w)
    passes: dict[str, tuple[str, Path]] = {}
    if (run_dir / GAMES_FILE).exists() or "games" in by_pass:
        passes["games"] = ("games", run_dir)
    for folder in _sae_folders(run_dir):
        row = kind_of_sae_folder(folder.name)
        passes[f"{SAE_DIR}/{folder.name}"] = (row.name if row is not None else f"sae-{folder.name}", folder)
    for pass_kind in by_pass:
        row = kind_of_pass(pass_kind)
        kind = row.name if row is not None else pass_kind
        if not any(k == kind for k, _ in passes.values()):
            passes[kind] = (kind, sae_pass_dir(run_dir, pass_kind))
    found = []
    for name, (kind, folder) in passes.items():
        mine = by_pass.get(pass_kind_of(kind) or "", [])
        skip = (SAE_DIR, *REPORT_FILES) if folder == run_dir else ()
        found.append(ExperimentFacts(
            name=name, kind=kind, folder=folder, workers=mine, processes=_processes(None, mine),
            driver_pid=lock_holder(run_dir / LOCK_FILE) if kind == "games" else None,
            command=argv if kind == "games" else [], outputs=list_outputs(folder, skip),
            bad_event_lines=bad if kind == "games" else 0, **games_facts(kind, folder),
        ))
    return found
