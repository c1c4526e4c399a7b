"""The study directory: what the runner writes, what `harness status` and the monitor read.

    STUDY/study.toml            the study file as first run (a rerun with a changed file is refused)
    STUDY/study.lock            one study runner at a time (the run lock, `harness.rundir.lock`)
    STUDY/study-events.jsonl    one `ExperimentEvent` per state change of an experiment
    STUDY/logs/NAME.log         stdout and stderr of the experiment's command
    STUDY/NAME/                 the experiment's folder: a run directory for `games`, the report for
                                `analyze`, the `--out` folder of an SAE pass
    STUDY/status.md, status.json  the status report (`harness status`)

The last `ExperimentEvent` of an experiment is its state on record; `complete` is final (a rerun
never starts it again), `running` with a dead pid means the study was killed (the rerun resumes it).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from harness.rundir.files import LOGS_DIR, STUDY_FILE
from harness.rundir.files import STUDY_EVENTS_FILE as EVENTS_FILE
from harness.rundir.jsonl import append_record, complete_lines

#: A log line that reports an error: the CLI's error line, an exception's last line, the kernel's
#: OOM killer. Case matters: a summary such as "errors 0" is not one.
ERROR_LINE = re.compile(r"harness: error:|\b\w*(Error|Exception)\b|\berror:|^Traceback|Killed|out of memory")
LOG_TAIL_BYTES = 64 * 1024

ExperimentState = Literal["running", "complete", "failed", "interrupted"]


class ExperimentEvent(BaseModel):
    """A state change of one experiment, appended by the study runner."""

    type: Literal["experiment"] = "experiment"
    time: float = Field(default_factory=time.time, description="Unix time of the change, seconds.")
    experiment: str = Field(description="The experiment's name in the study file.")
    kind: str = Field(description="Its kind (games, analyze, sae-train, ...).")
    state: ExperimentState
    command: list[str] = Field(default_factory=list, description="argv after `harness`.")
    pid: int | None = Field(None, description="The command's process while it runs (on this host).")
    devices: list[str] = Field(default_factory=list)
    returncode: int | None = Field(None, description="Exit status, once it ended.")
    note: str | None = Field(None, description="Why it failed or was interrupted, in words.")


def read_experiment_event(line: bytes | str) -> ExperimentEvent | None:
    """One line of study-events.jsonl; None for a blank line or one of another format (readers are
    tolerant)."""
    if not line.strip():
        return None
    try:
        return ExperimentEvent.model_validate_json(line)
    except ValidationError:
        return None


class StudyDir:
    """Paths of a study directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def study_file(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    def experiment_dir(self, name: str) -> Path:
        return self.path / name

    def log_path(self, name: str) -> Path:
        return self.path / LOGS_DIR / f"{name}.log"

    def is_study(self) -> bool:
        return self.study_file.is_file()

    def append(self, event: ExperimentEvent) -> None:
        append_record(self.events_path, event)

    def events(self) -> list[ExperimentEvent]:
        """Every complete event line, in order (a torn last line is skipped)."""
        read = (read_experiment_event(line) for line in complete_lines(self.events_path) if line is not None)
        return [e for e in read if e is not None]

    def last_events(self) -> dict[str, ExperimentEvent]:
        """Each experiment's latest event: its state on record."""
        return {e.experiment: e for e in self.events()}


def log_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> tuple[os.stat_result, list[str]] | None:
    """The log's stat and the non-empty lines of its last `max_bytes` (a progress bar's `\r`
    rewrites are lines of their own); None when there is no log."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            f.seek(max(0, st.st_size - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    return st, [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]


def last_error_line(lines: list[str], limit: int = 300) -> str | None:
    """The last line that reads like an error."""
    found = next((ln for ln in reversed(lines) if ERROR_LINE.search(ln)), None)
    return found[:limit] if found else None
