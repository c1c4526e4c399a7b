"""Every kind of experiment, in one table: its command, what it reads, what it writes, the pass kind
of its events and the reader of its headline results.

`config` checks an experiment's inputs against its row, `plan` builds its argv with the row's
builder, `harness.status.facts` tells its events and its folder in a run directory by the row's pass
kind, and `harness.status.headline` shows its results with the row's reader. An SAE pass has one
name everywhere: the command `harness sae NAME`, the folder RUN/sae/NAME, the events' kind NAME and
the study kind `sae-NAME` (an older name, `patching`, is still read).

Adding a kind: a row here (and its name in `ExperimentKind`), a headline reader in
harness/status/headline.py, a line in docs/study.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.rundir.files import (
    EVENTS_FILE,
    FEATURES_TABLE,
    GAMES_FILE,
    PATCH_FEATURES,
    PATHWAY_LAYERS,
    REPORT_FILE,
    WORDS_TABLE,
)
from harness.rundir.progress import pass_name

ExperimentKind = Literal[
    "games", "analyze", "sae-train", "sae-features", "sae-pathway", "sae-patch", "sae-words"
]


@dataclass(frozen=True)
class Resolved:
    """An experiment's inputs as its command line takes them (`plan` resolves the names)."""

    out: Path
    devices: list[str]
    config: Path | None = None
    runs: list[Path] = field(default_factory=list)
    run: Path | None = None
    sae: str | None = None
    files: dict[str, Path] = field(default_factory=dict)
    """`--NAME FILE` for each of the kind's `file_inputs` the experiment names."""
    ray: str | None = None


def gpu_ids(devices: list[str]) -> list[str]:
    """'cuda:1' -> '1' (and 'cuda' -> '0')."""
    return [d.split(":", 1)[1] if ":" in d else "0" for d in devices]


def games_argv(r: Resolved) -> list[str]:
    """`run games`: one worker per GPU (or a Ray cluster: as many GPU actors, or CPU actors for
    devices ['cpu']), else one in-process worker on its device."""
    assert r.config is not None
    argv = ["run", "games", "--config", str(r.config), "--out", str(r.out)]
    if r.ray and r.devices == ["cpu"]:
        argv += ["--workers", "1"]  # CPU actors (options.workers = N for more): a CPU cluster has no GPU
    elif len(r.devices) > 1 or r.ray:
        argv += [] if r.devices == ["cpu"] else ["--gpus", ",".join(gpu_ids(r.devices))]
    else:
        argv += ["--device", r.devices[0]]
    return argv + (["--ray", r.ray] if r.ray else [])


def analyze_argv(r: Resolved) -> list[str]:
    return ["analyze", *map(str, r.runs), "--out", str(r.out)]


def sae_argv(command: str) -> Callable[[Resolved], list[str]]:
    """`sae COMMAND RUN [--FILE_INPUT FILE ...] [--sae SPEC] --out --device --events`."""

    def argv(r: Resolved) -> list[str]:
        assert r.run is not None
        out = ["sae", command, str(r.run)]
        for name, path in r.files.items():
            out += [f"--{name}", str(path)]
        if r.sae is not None:
            out += ["--sae", r.sae]
        return out + ["--out", str(r.out), "--device", r.devices[0], "--events", str(r.out / EVENTS_FILE)]

    return argv


@dataclass(frozen=True)
class Kind:
    """One row of the table."""

    name: ExperimentKind
    argv: Callable[[Resolved], list[str]]
    """The argv after `harness`, before the experiment's own options."""
    pass_kind: str | None
    """The `kind` of the events it writes; None: it writes no progress events (its silence says nothing)."""
    inputs: Mapping[str, tuple[str, ...]]
    """Each field naming an input, and the kinds the named experiment may have."""
    required: tuple[str, ...]
    """The fields it must set (the others of `inputs` are optional)."""
    output: str | None
    """The file in its folder that the experiments after it read (and its headline shows)."""
    headline: str
    """The reader of its results: a function of harness/status/headline.py."""
    sae_pass: str | None = None
    """An SAE pass's one name: `harness sae NAME`, RUN/sae/NAME, events of kind NAME."""
    file_inputs: tuple[str, ...] = ()
    """Inputs passed as `--NAME FILE`: the named experiment's `output` (the others it only waits for)."""
    inherits_layers: bool = False
    """Runs on the layers its sae-train experiment trained unless its options say otherwise."""


_SAE = {"run": ("games",), "sae": ("sae-train",)}
_FEATURES = {**_SAE, "features": ("sae-features",)}


def _sae_kind(name: ExperimentKind, inputs: Mapping[str, tuple[str, ...]], required: tuple[str, ...],
              output: str | None, file_inputs: tuple[str, ...] = (), inherits_layers: bool = False) -> Kind:
    """An SAE pass: `harness sae NAME`, events of kind NAME, its reader `headline.NAME`."""
    command = name.removeprefix("sae-")
    return Kind(name, sae_argv(command), pass_kind=command, inputs=inputs, required=required, output=output,
                headline=command, sae_pass=command, file_inputs=file_inputs, inherits_layers=inherits_layers)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("games", games_argv, pass_kind="games", inputs={}, required=("config",), output=GAMES_FILE,
         headline="games"),
    Kind("analyze", analyze_argv, pass_kind=None, inputs={"runs": ("games",)}, required=("runs",),
         output=REPORT_FILE, headline="analyze"),
    _sae_kind("sae-train", inputs={"run": ("games",)}, required=("run",), output=None),
    _sae_kind("sae-features", inputs=_SAE, required=("run", "sae"), output=FEATURES_TABLE,
              inherits_layers=True),
    _sae_kind("sae-pathway", inputs=_FEATURES, required=("run", "sae"), output=PATHWAY_LAYERS,
              inherits_layers=True),
    _sae_kind("sae-patch", inputs=_FEATURES, required=("run", "sae", "features"), output=PATCH_FEATURES,
              file_inputs=("features",)),
    _sae_kind("sae-words", inputs={**_FEATURES, "causal": ("sae-patch",)},
              required=("run", "sae", "features"), output=WORDS_TABLE, file_inputs=("features", "causal")),
)}
"""In the pipeline's order."""


def kind_of_pass(pass_kind: str) -> Kind | None:
    """The kind whose events carry `pass_kind` (an older name too)."""
    name = pass_name(pass_kind)
    return next((k for k in KINDS.values() if k.pass_kind == name), None)


def kind_of_sae_folder(folder: str) -> Kind | None:
    """The SAE pass whose default folder is RUN/sae/`folder` (an older name too)."""
    name = pass_name(folder)
    return next((k for k in KINDS.values() if k.sae_pass == name), None)


def pass_kind_of(kind: str) -> str | None:
    """The pass kind of an experiment kind's events; None for a kind without any (or unknown)."""
    row = KINDS.get(kind)
    return row.pass_kind if row is not None else None
