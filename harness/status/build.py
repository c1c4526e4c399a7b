"""The status report of a study directory (or of one run directory): STUDY/status.md and status.json.

`build_status` reads the files (`facts`), judges each experiment (`diagnose`) and reads its headline
results (`headline`) into a `StudyStatus`; `render` writes it as Markdown; `write_status` does both
and writes the two files. The JSON is `StudyStatus.model_dump_json()`: docs/status.md lists its fields.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from harness.errors import RunDirError
from harness.rundir.files import (
    EVENTS_FILE,
    GAMES_FILE,
    MANIFEST_FILE,
    SAE_DIR,
    STATUS_JSON,
    STATUS_MD,
    STUDY_FILE,
)
from harness.rundir.manifest import read_manifest
from harness.rundir.progress import endpoint_totals
from harness.status.diagnose import judge, waits_for
from harness.status.facts import ExperimentFacts, run_facts, study_facts
from harness.status.headline import headlines
from harness.status.model import ExperimentStatus, OutputFile, StudyStatus, WorkerStatus
from harness.status.render import render
from harness.study.config import load_study
from harness.study.layout import StudyDir

DEFAULT_STALL_MINUTES = 10.0


def gpu_name(gpu: str | None) -> str:
    """'cuda:0' for the events' GPU id '0'."""
    return f"cuda:{gpu}" if gpu and gpu.isdigit() else gpu or "gpu"


def gpu_memory(f: ExperimentFacts) -> str | None:
    """'cuda:0 12.1/80.0 GiB, ...' from each worker's last progress event; None on CPU."""
    parts = []
    for w in f.workers:
        p = w.progress
        if p is not None and p.gpu_memory_used_mb is not None:
            total = f"/{p.gpu_memory_total_mb / 1024:.1f}" if p.gpu_memory_total_mb else ""
            parts.append(f"{gpu_name(w.gpu)} {p.gpu_memory_used_mb / 1024:.1f}{total} GiB")
    return ", ".join(parts) or None


def devices(f: ExperimentFacts) -> list[str]:
    """The devices on record, else the workers' GPUs, else cpu (once it has events)."""
    if f.devices:
        return f.devices
    gpus = sorted({gpu_name(w.gpu) for w in f.workers if w.gpu})
    return gpus or (["cpu"] if f.workers else [])


def experiment_status(f: ExperimentFacts, now: float, window_s: float) -> ExperimentStatus:
    v = judge(f, now, window_s)
    last_error = next((w.last_error for w in reversed(f.workers) if w.last_error), None) or f.log_error
    return ExperimentStatus(
        name=f.name, kind=f.kind, state=v.state, done=v.done, total=v.total,
        percent=round(100 * v.done / v.total, 1) if v.total and v.done is not None else None,
        devices=devices(f), gpu_memory=gpu_memory(f), eta_s=v.eta_s, note=v.note, diagnoses=v.diagnoses,
        command=f"harness {shlex.join(f.command)}" if f.command else None, folder=str(f.folder),
        log=str(f.log) if f.log else None, log_bytes=f.log_bytes,
        outputs=[OutputFile(path=o.path, bytes=o.bytes) for o in f.outputs], last_error=last_error,
        headlines=headlines(f.kind, f.folder) if v.state in ("complete", "running", "stalled") else [],
        workers=[WorkerStatus(
            worker=w.worker, kind=w.kind, gpu=w.gpu, status=w.status, done=w.games_done, total=w.games_total,
            pid=w.pid, last_event=w.last_time or None,
            gpu_memory_used_mb=w.progress.gpu_memory_used_mb if w.progress else None,
            gpu_memory_total_mb=w.progress.gpu_memory_total_mb if w.progress else None,
        ) for w in f.workers],
        endpoints=endpoint_totals(f.workers),
    )


def _waiting(statuses: list[ExperimentStatus], needs: dict[str, list[str]]) -> None:
    """A study experiment not started yet says which of its inputs are not complete."""
    states: dict[str, str] = {s.name: s.state for s in statuses}
    for s in statuses:
        if s.state == "not started" and not s.note:
            s.note = waits_for(needs.get(s.name, []), states)


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in (GAMES_FILE, EVENTS_FILE, MANIFEST_FILE, SAE_DIR))


def build_status(directory: str | Path, *, now: float | None = None,
                 stall_minutes: float | None = None) -> StudyStatus:
    """The report of a study directory or a run directory. RunDirError when it is neither."""
    path = Path(directory)
    now = time.time() if now is None else now
    study_dir = StudyDir(path)
    if study_dir.is_study():
        study = load_study(study_dir.study_file)
        window = stall_minutes if stall_minutes is not None else study.stall_minutes
        names = [e.name for e in study.experiment]
        facts = study_facts(study_dir, names, {e.name: e.kind for e in study.experiment})
        statuses = [experiment_status(f, now, 60 * window) for f in facts]
        _waiting(statuses, {e.name: e.needs(study) for e in study.experiment})
        return StudyStatus(directory=str(path), of="study", name=study.name, time=now,
                           stall_minutes=window, experiments=statuses)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such directory")
    if not is_run_dir(path):
        raise RunDirError(f"{path}: neither a study directory (no {STUDY_FILE}) nor a run directory "
                          f"(no {GAMES_FILE}, {EVENTS_FILE}, {MANIFEST_FILE} or {SAE_DIR}/)")
    window = stall_minutes if stall_minutes is not None else DEFAULT_STALL_MINUTES
    manifest = read_manifest(path)
    argv = manifest.argv if manifest is not None else []
    # argv[0] is the program (a `harness` script, harness/__main__.py): the command starts at `run games`
    argv = next((argv[i:] for i in range(len(argv)) if argv[i:i + 2] == ["run", "games"]), [])
    statuses = [experiment_status(f, now, 60 * window) for f in run_facts(path, argv)]
    return StudyStatus(directory=str(path), of="run", name=path.resolve().name, time=now,
                       stall_minutes=window, experiments=statuses)


def write_status(study_dir: Path, *, now: float | None = None, stall_minutes: float | None = None,
                 out: Path | None = None) -> Path:
    """Write status.md and status.json (each replaced whole) into `out`, by default the directory
    reported on (the study runner's own report); returns the status.md path."""
    status = build_status(study_dir, now=now, stall_minutes=stall_minutes)
    folder = Path(out) if out is not None else Path(study_dir)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / STATUS_MD, folder / STATUS_JSON
    from harness.rundir.fileops import write_atomic

    for path, text in ((md, render(status)), (js, status.model_dump_json(indent=2))):
        write_atomic(path, text.encode())  # an exclusive temporary file: never through a link
    return md

