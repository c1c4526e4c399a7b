"""manifest.json, typed: what a run directory holds and the settings it was made with.

Read it through `read_manifest` only: like the line readers it ignores fields a newer version
added and refuses a newer major schema version with one line naming the file. Older manifests
(and the minimal ones tests and tools write) lack most fields, so all but `run_id` have defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import RunDirError
from harness.records import NEWER_MAJOR, READ, SCHEMA_VERSION, SchemaVersion, SchemaVersionError
from harness.rundir.fileops import write_atomic
from harness.rundir.files import MANIFEST_FILE


class Manifest(BaseModel):
    """The manifest of one run directory, rewritten at each start of the run."""

    model_config = ConfigDict(extra="forbid")

    schema_version: SchemaVersion = Field(SCHEMA_VERSION, description="File format version 'MAJOR.MINOR'.")
    run_id: str = Field(description="Id of the run, written into every record.")
    created: float | None = Field(None, description="Unix time the run directory was made.")
    started: float | None = Field(None, description="Unix time the latest (re)start began.")
    resumes: list[float] = Field(
        default_factory=list, description="Unix times of the restarts after the first."
    )
    seed: int | None = Field(None, description="The run seed.")
    model: str | None = Field(None, description="Model label from the config.")
    host: str | None = Field(None, description="Host name of the machine that made the run.")
    argv: list[str] = Field(default_factory=list, description="Command line of the first start.")
    versions: dict[str, str] = Field(default_factory=dict, description="Python and package versions.")
    games_total: int | None = Field(None, description="Games of the run when complete.")
    served: dict[str, str] = Field(
        default_factory=dict,
        description="backend 'openai': the model name and system_fingerprint the endpoint reported "
        "(seeds are best-effort on most APIs: these say which build answered).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The resolved RunConfig (model_dump(mode='json')) of the latest start.",
    )

    def model_section(self) -> dict[str, Any]:
        """config.model, or {} (what the SAE passes need to load the same model)."""
        return self.config.get("model") or {}


def manifest_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MANIFEST_FILE


def read_manifest(run_dir: str | Path) -> Manifest | None:
    """The run directory's manifest; None when there is none. RunDirError (one line naming the
    file and field) when it is unreadable or of a newer major version."""
    path = manifest_path(run_dir)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunDirError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return Manifest.model_validate_json(text, **READ)
    except ValidationError as e:
        newer = [err for err in e.errors() if err["type"] == NEWER_MAJOR]
        if newer:
            raise SchemaVersionError(f"{path}: {newer[0]['msg']}") from None
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RunDirError(f"{path}: {loc}: {first['msg']}; use a new --out") from None


def write_manifest(run_dir: str | Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically (a crash leaves the old one or the new one; never written
    through a link, no temporary file left on a failure)."""
    write_atomic(manifest_path(run_dir), manifest.model_dump_json(indent=2).encode())
