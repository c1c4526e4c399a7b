"""The study file: which experiments, what each reads, where each runs.

A TOML file read into pydantic models like the run configs; a mistake is one `ConfigError` line
naming the file and the field (`experiment[3].features: ...`).

    name = "demo"
    out = "runs/study-demo"

    [[experiment]]
    name = "games-smollm2"
    kind = "games"
    config = "demo.toml"          # relative to the study file

    [[experiment]]
    name = "features"
    kind = "sae-features"
    run = "games-smollm2"         # inputs are named by experiment
    sae = "train"                 # a sae-train experiment, or an SAE spec (a path)
    options = { layers = "15" }   # any flag of the command, without its leading dashes
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.config import format_validation_error, read_toml
from harness.errors import ConfigError
from harness.study.kinds import KINDS, ExperimentKind

OptionValue = str | int | float | bool | list[str] | list[int]


class Experiment(BaseModel):
    """One step of the study: one `harness` command writing one folder of the study directory."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Folder name under the study directory.")
    kind: ExperimentKind
    config: str | None = Field(None, description="games: the run config (TOML), relative to the study file.")
    runs: list[str] = Field(default_factory=list, description="analyze: the games experiments to compare.")
    run: str | None = Field(None, description="sae-*: the games experiment whose model and games are read.")
    sae: str | None = Field(
        None, description="sae-*: a sae-train experiment, or an SAE spec (folder, file or `name@path`)."
    )
    features: str | None = Field(None, description="The sae-features experiment whose table is read.")
    causal: str | None = Field(None, description="sae-words: a sae-patch experiment (only causal features).")
    devices: list[str] = Field(
        default_factory=lambda: ["cpu"],
        description="'cpu' or GPUs ('cuda:0', ...); experiments on different devices run at the same time.",
    )
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Flags of the command without their dashes: {layers = '15', top = 3}.",
    )

    @model_validator(mode="after")
    def _inputs_of_kind(self) -> Experiment:
        kind = KINDS[self.kind]
        for name in kind.required:
            if not getattr(self, name):
                raise ValueError(f"a {self.kind} experiment needs {name!r}")
        allowed = set(kind.inputs) | set(kind.required)
        for name in ("config", "runs", "run", "sae", "features", "causal"):
            if getattr(self, name) and name not in allowed:
                raise ValueError(f"{name!r} is not an input of a {self.kind} experiment")
        if not self.devices:
            raise ValueError("devices: at least one ('cpu' or 'cuda:N')")
        return self

    def needs(self, study: Study) -> list[str]:
        """The experiments that must be complete before this one starts (an SAE spec that is a
        path names no experiment)."""
        names = {e.name for e in study.experiment}
        refs = [*self.runs, self.run, self.sae, self.features, self.causal]
        return [r for r in refs if r is not None and r in names]


class Study(BaseModel):
    """The study file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Label of the study in its report.")
    out: str = Field("runs/study", description="Study directory (overridden by `--out`).")
    stall_minutes: float = Field(
        10.0, gt=0,
        description="An experiment whose process lives but writes no event for this long is stalled.",
    )
    cpu_slots: int = Field(1, ge=1, description="Experiments on 'cpu' that may run at the same time.")
    experiment: list[Experiment] = Field(min_length=1)
    _source: Path | None = None

    @model_validator(mode="after")
    def _references(self) -> Study:
        by_name: dict[str, Experiment] = {}
        for e in self.experiment:
            if e.name in by_name:
                raise ValueError(f"experiment {e.name!r} is named twice")
            by_name[e.name] = e
        for e in self.experiment:
            for field, kinds in KINDS[e.kind].inputs.items():
                value = getattr(e, field)
                for ref in value if isinstance(value, list) else [value]:
                    if ref is None or (field == "sae" and ref not in by_name):
                        continue  # an SAE spec given as a path
                    if ref not in by_name:
                        raise ValueError(f"experiment {e.name!r}: {field} names no experiment: {ref!r}")
                    if by_name[ref].kind not in kinds:
                        raise ValueError(
                            f"experiment {e.name!r}: {field} {ref!r} is a {by_name[ref].kind} experiment, "
                            f"not {' or '.join(kinds)}"
                        )
        return self

    def get(self, name: str) -> Experiment:
        return next(e for e in self.experiment if e.name == name)

    @property
    def source(self) -> Path | None:
        """The study file it was read from (None when built in code)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder the study file's relative paths start from."""
        return self._source.parent if self._source is not None else Path.cwd()


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; any mistake is one ConfigError line naming file and field."""
    p = Path(path)
    data = read_toml(p, "study file")
    try:
        study = Study.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(p), e, set())) from None
    study._source = p.resolve()
    return study
