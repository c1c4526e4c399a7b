"""`harness run games --dry-run`: the estimate's arithmetic by hand, nothing written, every shipped
config loads, and the paper's API configs carry prices and keys by name only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import load_config
from harness.run.estimate import approximate_count, estimate

REPO = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, extra: str = ""):
    path = tmp_path / "c.toml"
    path.write_text(f"""
repetitions = 3
out = "{tmp_path / 'run'}"
[model]
name = "m"
path = "m"
style = "chat"
[generation]
max_new_tokens = 100
[game]
max_rounds = 10
history_window = 0
[conditions]
ids = ["fixed-none-BASE", "variable-none-GMP"]
[guard]
max_retries = 2
extract = true
[backend]
kind = "openai"
base_urls = ["http://127.0.0.1:9/v1"]
{extra}
""")
    return load_config(str(path)), path


def test_the_scenarios_by_hand(tmp_path):
    config, _ = _config(tmp_path, "[pricing]\ninput_per_million = 1.0\noutput_per_million = 10.0\n")
    result = estimate(config, lambda text: 50, "fifty a prompt")
    first, reference, upper = result.scenarios
    assert result.games == 6
    assert (first.requests, first.prompt_tokens, first.output_tokens) == (6, 300, 600)
    assert first.cost == pytest.approx(300 / 1e6 * 1.0 + 600 / 1e6 * 10.0)
    # every game 10 rounds, each 1 + 2 re-asks + the decision step
    assert (upper.requests, upper.prompt_tokens, upper.output_tokens) == (240, 12_000, 24_000)
    assert reference.requests == round(6 * 5 * 1.1)
    measured = estimate(config, lambda text: 50, "x", games_done=2, measured=[(2, 3), (4, 5)])
    assert measured.games == 4 and measured.scenarios[1].requests == round(4 * 3 * (8 / 6))
    assert "2 games already played" in measured.scenarios[1].assumption


def test_prompts_grow_with_the_history_shown(tmp_path):
    config, _ = _config(tmp_path)
    flat = estimate(config, approximate_count, "chars").scenarios[2].prompt_tokens
    grown = estimate(config.model_copy(update={"game": config.game.model_copy(update={"history_window": 5})}),
                     approximate_count, "chars").scenarios[2].prompt_tokens
    assert grown > flat


def test_dry_run_prints_and_writes_nothing(tmp_path, capsys):
    _, path = _config(tmp_path, "[pricing]\ninput_per_million = 0.15\noutput_per_million = 0.60\n")
    assert main(["run", "games", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "first decision" in out and "upper bound" in out and "cost, USD" in out
    assert not (tmp_path / "run").exists()
    assert main(["run", "games", "--config", str(path), "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["games"] == 6 and len(data["scenarios"]) == 3 and data["currency"] == "USD"


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    if path.name.startswith("study"):
        pytest.skip("a study file, not a run config")
    config = load_config(str(path))
    if config.backend.kind == "openai":
        assert config.backend.base_urls
    if path.parent.name == "api":
        assert config.conditions.grid == "64" and config.repetitions == 50
        assert config.generation.temperature == 0.7 and config.pricing is not None
        assert config.backend.api_key_env and "sk-" not in path.read_text()
