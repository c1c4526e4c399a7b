"""The patching pass: baseline once, then every selected feature, resumable line by line.

Results go to `patch_trials.jsonl`, one line per unit of work, written and flushed when the unit is
complete: first a `baseline` line (both prompts, unpatched: shared by every feature of the pass),
then one `feature` line per feature (4 conditions: {safe, risky} patch x {safe, risky} prompt). A
pass killed midway loses at most the batch in flight; rerun it and the features already in the
file are skipped. `patch_meta.json` holds the settings and the prompts; a rerun with different
settings is refused (they would mix two experiments in one file).

Trial i of a prompt has the seed derive_seed(seed, "patch", prompt, i) in every condition (common
random numbers): a patch that changes nothing gives the very same answers as the baseline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError
from harness.rundir.files import PATCH_META, PATCH_TRIALS
from harness.rundir.jsonl import append_record, complete_lines, repair_torn_tail
from harness.seeds import derive_seed
from sae.patching.prompts import PROMPTS, PatchPrompt

PATCHES = ("safe", "risky")  # the safe (stopped) group's mean, the bankrupt group's mean


class PatchSettings(BaseModel):
    """What a pass's trials depend on; stored in patch_meta.json and checked on resume."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(50, gt=0, description="Trials per condition.")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, gt=0)
    seed: int = 0
    model: str = ""
    style: str = "chat"
    decision: str = Field(
        "free", description="'constrained': answers generated under the decision pattern after the cue."
    )
    prompts: dict[str, dict] = Field(
        default_factory=dict, description="Per prompt: condition, balance, history, rendered."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Warnings of the pass (an SAE named another model); not checked on resume.",
    )


class Trial(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int
    action: str | None
    bet: int | None
    kind: str
    response: str


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    patch: Literal["baseline", "safe", "risky"]
    target: float | None = None
    trials: list[Trial]


class UnitLine(BaseModel):
    """One line of patch_trials.jsonl."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["baseline", "feature"]
    layer: int | None = None
    feature: int | None = None
    direction: str | None = None
    conditions: list[Condition]
    wall_s: float = 0.0


def trial_seeds(settings: PatchSettings, prompt: str) -> list[int]:
    return [derive_seed(settings.seed, "patch", prompt, i) for i in range(settings.trials)]


def read_lines(file: Path) -> list[UnitLine]:
    """Complete lines of an earlier pass; a torn last line (killed while writing) is cut off."""
    if not file.is_file():
        return []
    repair_torn_tail(file)
    good, keep = [], 0
    for raw in complete_lines(file):
        try:
            good.append(UnitLine.model_validate_json(raw or b""))
        except ValueError:
            break
        keep += len(raw or b"")
    if keep != file.stat().st_size:
        os.truncate(file, keep)
    return good


def open_pass(out: Path, settings: PatchSettings, restart: bool = False) -> list[UnitLine]:
    """Create/check the output folder; the lines already done (none with `restart`)."""
    out.mkdir(parents=True, exist_ok=True)
    meta, trials = out / PATCH_META, out / PATCH_TRIALS
    if restart:
        trials.unlink(missing_ok=True)
    if meta.is_file() and trials.is_file():
        old = PatchSettings.model_validate_json(meta.read_text())
        changed = [k for k in PatchSettings.model_fields
                   if k != "warnings" and getattr(old, k) != getattr(settings, k)]
        if changed:
            raise ConfigError(f"{meta}: an earlier pass used other settings ({', '.join(changed)}); "
                              "use another --out or --restart")
    meta.write_text(settings.model_dump_json(indent=2))
    return read_lines(trials)


def append_line(out: Path, line: UnitLine) -> None:
    append_record(out / PATCH_TRIALS, line, fsync=True)


def _condition(prompt: str, patch: str, target: float | None, results) -> Condition:
    return Condition(prompt=prompt, patch=patch, target=target,
                     trials=[Trial(seed=t.seed, action=t.action, bet=t.bet, kind=t.kind, response=t.response)
                             for t in results])


class _Batches:
    """Generates rows in calls of at most `batch_size`; trial i of a prompt gets the same seed in
    every condition."""

    def __init__(self, generator, prompts: dict[str, PatchPrompt], settings: PatchSettings, batch_size: int):
        self.generator, self.prompts, self.settings, self.batch_size = (
            generator, prompts, settings, batch_size
        )
        self.seeds = {p: trial_seeds(settings, p) for p in PROMPTS}

    def generate(self, rows, saes) -> list:
        results = []
        for start in range(0, len(rows), self.batch_size):
            results += self.generator.run(rows[start : start + self.batch_size], self.prompts, saes)
        return results


def _baseline(batches: _Batches) -> UnitLine:
    from sae.patching.generate import Row

    t0, n = time.perf_counter(), batches.settings.trials
    res = batches.generate([Row(p, s) for p in PROMPTS for s in batches.seeds[p]], {})
    conditions = [_condition(p, "baseline", None, res[i * n : (i + 1) * n]) for i, p in enumerate(PROMPTS)]
    return UnitLine(type="baseline", conditions=conditions, wall_s=time.perf_counter() - t0)


def _feature_group(batches: _Batches, layer: int, group: list[dict], saes: dict) -> list[UnitLine]:
    """The four patched conditions of every feature of `group` (one layer), in shared batches."""
    from sae.patching.generate import Row

    t0, n = time.perf_counter(), batches.settings.trials
    keys = [(j, patch, p) for p in PROMPTS for j in range(len(group)) for patch in PATCHES]
    rows = [Row(p, s, layer, group[j]["feature"], float(group[j][f"target_{patch}"]))
            for j, patch, p in keys for s in batches.seeds[p]]
    res = batches.generate(rows, saes)
    wall = (time.perf_counter() - t0) / len(group)
    by_key = {key: res[i * n : (i + 1) * n] for i, key in enumerate(keys)}
    return [
        UnitLine(type="feature", layer=layer, feature=int(f["feature"]), direction=f.get("direction"),
                 wall_s=wall,
                 conditions=[_condition(p, patch, float(f[f"target_{patch}"]), by_key[(j, patch, p)])
                             for patch in PATCHES for p in PROMPTS])
        for j, f in enumerate(group)
    ]


def run_pass(
    generator,
    prompts: dict[str, PatchPrompt],
    features: list[dict],
    load_sae: Callable[[int], object],
    settings: PatchSettings,
    out: Path,
    *,
    batch_size: int = 200,
    restart: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[UnitLine]:
    """Baseline (if not done), then every feature not yet in the file. `features`: dicts with layer,
    feature, target_safe, target_risky, direction. Features of one layer share batches; only one
    layer's SAE is loaded at a time (`load_sae(layer)`)."""
    done_lines = open_pass(out, settings, restart)
    done = {(u.layer, u.feature) for u in done_lines if u.type == "feature"}
    todo = [f for f in features if (f["layer"], f["feature"]) not in done]
    total, finished = len(features), len(features) - len(todo)
    if progress:
        progress(finished, total)
    batches = _Batches(generator, prompts, settings, batch_size)
    if not any(u.type == "baseline" for u in done_lines):
        line = _baseline(batches)
        append_line(out, line)
        done_lines.append(line)
    per_group = max(1, batch_size // (len(PATCHES) * len(PROMPTS) * settings.trials))
    for layer in sorted({f["layer"] for f in todo}):
        saes = {layer: load_sae(layer)}
        mine = [f for f in todo if f["layer"] == layer]
        for start in range(0, len(mine), per_group):
            for line in _feature_group(batches, layer, mine[start : start + per_group], saes):
                append_line(out, line)
                done_lines.append(line)
            finished += len(mine[start : start + per_group])
            if progress:
                progress(finished, total)
        del saes
    return done_lines
