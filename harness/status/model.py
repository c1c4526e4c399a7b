"""The status report as data: `StudyStatus` is status.json (docs/status.md lists its fields).

Only pydantic here, so the builder, the renderer, the schema command and the monitor all import it
without importing each other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.records import EndpointStats

State = Literal["not started", "running", "complete", "stalled", "failed", "interrupted"]
STATES: tuple[State, ...] = ("not started", "running", "complete", "stalled", "failed", "interrupted")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Headline(_Model):
    """One small table of results (or a line of text when `header` is empty)."""

    title: str = Field(description="What the table shows, with the file it comes from.")
    header: list[str] = Field(default_factory=list, description="Column names.")
    rows: list[list[str]] = Field(default_factory=list, description="Cells, formatted.")
    text: str = Field("", description="A line said beside (or instead of) the table.")


class OutputFile(_Model):
    """A file (or folder) an experiment wrote."""

    path: str = Field(description="Relative to the experiment's folder; a folder ends in '/'.")
    bytes: int = Field(description="Size; a folder's files summed.")


class WorkerStatus(_Model):
    """One process of the experiment's pass, as its events say."""

    worker: int = Field(description="Worker index (one per GPU or CPU worker).")
    kind: str = Field(description="Pass kind of its events (games, train, features, pathway, patch, words).")
    gpu: str | None = Field(description="GPU id, null on CPU.")
    status: str = Field(description="running, complete, incomplete, failed or interrupted (its events).")
    done: int = Field(description="Units done, those found done on resume included.")
    total: int = Field(description="Units of this worker.")
    pid: int | None = Field(description="Its process, from its latest run_start.")
    gpu_memory_used_mb: float | None = Field(None, description="From its last progress event, MiB.")
    gpu_memory_total_mb: float | None = Field(None, description="From its last progress event, MiB.")
    last_event: float | None = Field(None, description="Unix time of its last event.")


class ExperimentStatus(_Model):
    """One row of the summary table and its section."""

    name: str = Field(description="The experiment's name (for a run directory: games, sae/NAME).")
    kind: str = Field(description="games, analyze, sae-train, sae-features, ... (the study file's kinds).")
    state: State = Field(description="not started, running, complete, stalled, failed or interrupted.")
    done: int | None = Field(None, description="Units done (games, prompts, steps), null when unknown.")
    total: int | None = Field(None, description="Units in all, null when unknown.")
    percent: float | None = Field(None, description="100 done / total, one decimal.")
    devices: list[str] = Field(default_factory=list, description="As the study runner assigned them.")
    gpu_memory: str | None = Field(None, description="'cuda:0 12.1/80.0 GiB' per GPU worker.")
    eta_s: float | None = Field(None, description="Seconds left at the rate since the (re)start.")
    note: str = Field("", description="The first diagnosis, or why it failed.")
    diagnoses: list[str] = Field(default_factory=list, description="Everything found wrong, in words.")
    command: str | None = Field(None, description="The command line that runs it.")
    folder: str = Field(description="Its run directory or output folder.")
    log: str | None = Field(None, description="Its log file (study directories only).")
    log_bytes: int | None = Field(None, description="The log's size; null while it does not exist.")
    outputs: list[OutputFile] = Field(default_factory=list, description="The files in its folder.")
    last_error: str | None = Field(None, description="The last error event, else the log's last error line.")
    headlines: list[Headline] = Field(default_factory=list, description="Headline results.")
    workers: list[WorkerStatus] = Field(default_factory=list, description="Its pass's processes.")
    endpoints: list[EndpointStats] = Field(
        default_factory=list,
        description="backend 'openai': each endpoint summed over the workers' last progress events.",
    )


class StudyStatus(_Model):
    """status.json: the whole report."""

    directory: str = Field(description="The directory given to `harness status`.")
    of: Literal["study", "run"] = Field(description="A study directory or a single run directory.")
    name: str = Field(description="The study's name, or the run directory's name.")
    time: float = Field(description="Unix time the report was made.")
    stall_minutes: float = Field(description="The stall window used.")
    experiments: list[ExperimentStatus] = Field(description="In the study file's order.")


def status_json_schema() -> dict:
    """The JSON Schema (Draft 2020-12) of status.json."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **StudyStatus.model_json_schema()}
