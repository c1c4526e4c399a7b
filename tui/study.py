"""The monitor on a study directory: one row per experiment, judged as `harness status` judges it.

`StudyWatch` follows the study's records (study-events.jsonl) and, at each poll, looks at the
processes on record and the logs' times; the experiments' own events come through the monitor's
usual follower (one source per STUDY/NAME/events.jsonl) into `MonitorState`. `experiment_rows`
joins the two into `ExperimentRow`s with `harness.status.diagnose.judge`: pure, "now" passed in.
No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.rundir.jsonl import JsonlTail
from harness.rundir.progress import WorkerKey, WorkerState
from harness.status.build import devices, gpu_memory
from harness.status.diagnose import judge, waits_for
from harness.status.facts import ExperimentFacts, ProcessState, pass_workers, process_state
from harness.study.config import load_study
from harness.study.layout import ExperimentEvent, StudyDir, read_experiment_event
from tui.views import ExperimentRow


@dataclass
class StudyRead:
    """What one poll of the study's own files found: records so far, processes and log times now."""

    records: dict[str, ExperimentEvent] = field(default_factory=dict)
    processes: dict[int, ProcessState] = field(default_factory=dict)
    log_mtimes: dict[str, float] = field(default_factory=dict)


class StudyWatch:
    """A study directory's experiments (from its study.toml) and their records."""

    def __init__(self, path: Path) -> None:
        self.dir = StudyDir(path)
        study = load_study(self.dir.study_file)
        self.name = study.name
        self.names = [e.name for e in study.experiment]
        self.kinds = {e.name: e.kind for e in study.experiment}
        self.needs = {e.name: e.needs(study) for e in study.experiment}
        self.stall_minutes = study.stall_minutes
        self._tail = JsonlTail(self.dir.events_path)
        self._records: dict[str, ExperimentEvent] = {}

    def runs(self) -> list[Path]:
        """The experiments' folders, in the study file's order: the monitor's sources."""
        return [self.dir.experiment_dir(n) for n in self.names]

    def poll(self) -> StudyRead:
        read = self._tail.read()
        if read.reset:
            self._records = {}
        for ev in map(read_experiment_event, read.lines):
            if ev is not None:
                self._records[ev.experiment] = ev
        pids = {r.pid: r.time for r in self._records.values() if r.state == "running" and r.pid is not None}
        mtimes = {}
        for name in self.names:
            try:
                mtimes[name] = self.dir.log_path(name).stat().st_mtime
            except OSError:
                pass
        return StudyRead(dict(self._records), {p: process_state(p, t) for p, t in pids.items()}, mtimes)


def experiment_rows(
    watch: StudyWatch, read: StudyRead, workers: dict[tuple[int, str, int], WorkerState], now: float,
    window_s: float,
) -> tuple[ExperimentRow, ...]:
    """One row per experiment; source i of the monitor's workers is experiment `watch.names[i]`."""
    names, kinds = watch.names, watch.kinds
    by_source: dict[int, dict[WorkerKey, WorkerState]] = {}
    for (source, kind, worker), w in workers.items():
        by_source.setdefault(source, {})[(kind, worker)] = w
    verdicts = []
    for i, name in enumerate(names):
        rec = read.records.get(name)
        mine = pass_workers(by_source.get(i, {}), kinds[name])
        f = ExperimentFacts(
            name=name, kind=kinds[name], folder=Path(name), workers=mine, recorded=rec,
            processes=read.processes, devices=rec.devices if rec is not None else [],
            log_mtime=read.log_mtimes.get(name),
        )
        verdicts.append((f, judge(f, now, window_s)))
    states: dict[str, str] = {f.name: v.state for f, v in verdicts}
    return tuple(ExperimentRow(
        id=f"x-{i}", name=f.name, kind=f.kind, state=v.state, done=v.done, total=v.total, eta_s=v.eta_s,
        devices=", ".join(devices(f)), gpu_memory=gpu_memory(f),
        note=v.note or (waits_for(watch.needs[f.name], states) if v.state == "not started" else ""),
    ) for i, (f, v) in enumerate(verdicts))
