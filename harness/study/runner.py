"""`harness study run`: each experiment as a `harness` subprocess, started when its inputs are
complete and its devices are free; state changes go to study-events.jsonl and the terminal.

Children run in their own process group, so a Ctrl-C at the terminal reaches only the runner,
which forwards each signal once to each child (the first: the command saves and stops; a second:
it quits at once, as it does when run alone); each gets SIGTERM from the kernel if the runner
dies (PR_SET_PDEATHSIG), so a killed study leaves no orphan writing. A rerun resumes: experiments
complete on record are skipped, the others started again (the commands resume from their own
files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import RunDirError
from harness.study.config import Experiment, Study
from harness.study.layout import ExperimentEvent, ExperimentState, StudyDir, last_error_line, log_tail
from harness.study.plan import blocked, fits, ready


def failure_note(log: Path, limit: int = 240) -> str | None:
    """The log's last error line, else its last line: why an experiment failed, in its own words."""
    tail = log_tail(log)
    if tail is None or not tail[1]:
        return None
    return last_error_line(tail[1], limit) or tail[1][-1][:limit]


def duration(seconds: float) -> str:
    """`42 s`, `2 min 10 s`, `1 h 5 min`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a live harness process (not a pid reused by something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"harness" in cmdline


def _child_setup() -> None:
    """In the child before exec: its own process group (the terminal's Ctrl-C reaches only the
    runner), and SIGTERM when the runner dies."""
    import ctypes

    os.setpgid(0, 0)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _differences(old: dict, new: dict) -> list[str]:
    """Top-level fields (and experiments by index) that differ, `out` aside."""
    keys = sorted((set(old) | set(new)) - {"out", "experiment"})
    found = [k for k in keys if old.get(k) != new.get(k)]
    a, b = old.get("experiment", []), new.get("experiment", [])
    found += [f"experiment[{i}]" for i in range(max(len(a), len(b))) if a[i:i + 1] != b[i:i + 1]]
    return found


def adopt_study_file(source: Path, study_dir: StudyDir) -> None:
    """Copy the study file into the directory on the first run; on a rerun refuse a file that
    changed in anything but `out` (the directory's experiments were planned from the first)."""
    from harness.config import read_toml

    target = study_dir.study_file
    if not target.is_file():
        study_dir.path.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        return
    changed = _differences(read_toml(target, "study file"), read_toml(source, "study file"))
    if changed:
        raise RunDirError(
            f"{source}: differs from {target} (the file this study was started with) in "
            f"{', '.join(changed)}; rerun with that file or use another --out"
        )


@dataclass
class _Child:
    exp: Experiment
    proc: subprocess.Popen
    started: float = field(default_factory=time.time)


class StudyRunner:
    """Runs a planned study in its directory; `run()` returns the exit status."""

    def __init__(self, study: Study, study_dir: StudyDir, argvs: dict[str, list[str]], *,
                 poll_s: float = 0.5, out=None):
        self.study, self.dir, self.argvs, self.poll_s = study, study_dir, argvs, poll_s
        self.out = out or sys.stdout
        self.children: dict[str, _Child] = {}
        self.complete: set[str] = set()
        self.failed: set[str] = set()
        self.interrupted: set[str] = set()
        self.stop_signals = 0

    def say(self, name: str, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {text}", file=self.out, flush=True)

    def record(self, exp: Experiment, state: ExperimentState, **fields) -> None:
        self.dir.append(ExperimentEvent(experiment=exp.name, kind=exp.kind, state=state,
                                        command=self.argvs[exp.name], devices=exp.devices, **fields))

    # --- resume ----------------------------------------------------------------------------------

    def resume_state(self, wait_s: float = 60.0) -> None:
        """Take the record: complete experiments are done; a `running` one whose process still
        lives (the runner was killed, its child is still saving) is waited for."""
        for name, event in self.dir.last_events().items():
            if name not in self.argvs:
                continue
            if event.state == "complete":
                self.complete.add(name)
                self.say(name, "complete on record, not rerun")
            elif event.state == "running" and event.pid is not None and _pid_alive(event.pid):
                deadline = time.time() + wait_s
                self.say(name, f"waiting for its earlier process (pid {event.pid}) to end")
                while _pid_alive(event.pid) and time.time() < deadline:
                    time.sleep(0.2)
                if _pid_alive(event.pid):
                    raise RunDirError(
                        f"{self.dir.path}: experiment {name!r} still runs as pid {event.pid} from an "
                        "earlier study runner; stop it or wait for it"
                    )

    # --- children --------------------------------------------------------------------------------

    def start(self, exp: Experiment) -> None:
        argv = self.argvs[exp.name]
        log = self.dir.log_path(exp.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.dir.experiment_dir(exp.name).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as f:
            f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} harness {' '.join(argv)}\n".encode())
            f.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness", *argv], stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, env=env, preexec_fn=_child_setup,  # noqa: PLW1509
            )
        self.children[exp.name] = _Child(exp, proc)
        self.record(exp, "running", pid=proc.pid)
        self.say(exp.name, f"running on {','.join(exp.devices)} (pid {proc.pid})")

    def reap(self) -> None:
        """Record every child that ended since the last look."""
        for name, child in list(self.children.items()):
            rc = child.proc.poll()
            if rc is None:
                continue
            del self.children[name]
            took = duration(time.time() - child.started)
            if rc == 0:
                self.complete.add(name)
                self.record(child.exp, "complete", returncode=0)
                self.say(name, f"complete ({took})")
            elif self.stop_signals:
                self.interrupted.add(name)
                self.record(child.exp, "interrupted", returncode=rc, note="the study was stopped")
                self.say(name, f"interrupted after {took}; rerun the same command to resume")
            else:
                self.failed.add(name)
                note = failure_note(self.dir.log_path(name)) or f"exit status {rc}"
                self.record(child.exp, "failed", returncode=rc, note=note)
                self.say(name, f"failed (exit {rc}, {took}): {note}; log: {self.dir.log_path(name)}")
                for other in sorted(blocked(self.study, [name]) - self.complete):
                    self.say(other, f"not started: it needs {name}, which failed")

    def start_ready(self) -> None:
        started = set(self.children) | self.interrupted
        for name in ready(self.study, self.complete, started, self.failed):
            exp = self.study.get(name)
            if fits(exp, (c.exp for c in self.children.values()), self.study.cpu_slots):
                self.start(exp)

    def _on_signal(self, signum, frame) -> None:
        self.stop_signals += 1
        if self.stop_signals == 1:
            os.write(2, b"harness: stopping the study: each running command saves its work\n")
        for child in self.children.values():
            try:
                os.killpg(child.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.resume_state()
            while True:
                self.reap()
                if not self.stop_signals:
                    self.start_ready()
                if not self.children:
                    break
                time.sleep(self.poll_s)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.summary()

    def summary(self) -> int:
        """One closing line; 130 when stopped, 1 when anything failed, else 0."""
        names = [e.name for e in self.study.experiment]
        left = [n for n in names if n not in self.complete | self.failed | self.interrupted]
        print(f"study: {len(self.complete)}/{len(names)} complete, {len(self.failed)} failed, "
              f"{len(self.interrupted)} interrupted, {len(left)} not started", file=self.out, flush=True)
        if self.stop_signals:
            return 130
        return 1 if self.failed or left else 0
