"""Generated configs and flags through `harness run games` (scripted backend): the run completes,
or one line and exit 2 with nothing written."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import (
    EDGE_FLOATS,
    EDGE_INTS,
    assert_clean,
    run_cli,
    scalars,
    snapshot,
    to_toml,
    values,
)

BASE = {
    "seed": 1,
    "repetitions": 2,
    "concurrency": 8,
    "model": {"name": "scripted", "path": "unused"},
    "game": {"max_rounds": 5},
    "conditions": {"ids": ["fixed-none-BASE", "variable-W-GMP"]},
    "backend": {"kind": "scripted", "script": ["Final Decision: Bet $10", "Final Decision: Stop"]},
}

#: Numbers that are refused or small: a valid large count would make a long run, not a finding.
small_or_refused = st.sampled_from(EDGE_INTS).filter(lambda n: n <= 5 or n > 10**6)
counts = st.one_of(small_or_refused, st.sampled_from(EDGE_FLOATS), st.text(max_size=4))
FIELDS = {
    "seed": values, "repetitions": counts, "concurrency": values, "progress_interval_s": values,
    "model.name": values, "model.style": values, "model.dtype": values, "model.system_prompt": values,
    "generation.temperature": values, "generation.top_p": values, "generation.max_new_tokens": values,
    "generation.stop": values,
    "game.initial_balance": values, "game.win_probability": values, "game.payout_multiplier": values,
    "game.fixed_bet": values, "game.min_bet": values, "game.max_rounds": values,
    "game.history_window": values, "game.loss_streak_warning": values, "game.decision": values,
    "guard.max_retries": counts, "guard.request_timeout_s": values, "guard.extract": values,
    "guard.unparsed_policy": values,
    "conditions.grid": values, "conditions.bet_types": values, "conditions.first_results": values,
    "conditions.components": values, "conditions.ids": values,
    "backend.kind": st.one_of(st.sampled_from(["scripted", "transformers", "vllm", "auto", "tgi"]), values),
    "backend.device": values, "backend.max_batch_size": values, "backend.batch_wait_ms": values,
    "run.durability": values,
    "colour": values, "game.colour": values, "game": scalars, "conditions": scalars,
}


@st.composite
def configs(draw) -> dict:
    """BASE with one to three fields set to a hostile value, or removed."""
    data = copy.deepcopy(BASE)
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True)):
        *tables, name = key.split(".")
        node = data
        for t in tables:
            if not isinstance(node.get(t), dict):
                node[t] = {}
            node = node[t]
        if draw(st.integers(0, 5)) == 0:
            node.pop(name, None)
        else:
            node[name] = draw(FIELDS[key])
    return data


def _run(config_bytes: bytes, *flags: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg, out = Path(tmp) / "c.toml", Path(tmp) / "run"
        cfg.write_bytes(config_bytes)
        before = snapshot(Path(tmp))
        code, err = run_cli(["run", "games", "--config", str(cfg), "--out", str(out), "--quiet", *flags])
        assert_clean(code, err, before)
        if code != 0:
            assert not out.exists(), "a refused config wrote its run directory"


@given(configs())
def test_generated_config(data):
    _run(to_toml(data).encode())


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_bytes_as_config(raw):
    _run(raw)


INT_FLAGS = ["--reps", "--seed", "--max-rounds", "--max-new-tokens", "--concurrency"]
CONDITION_IDS = ["fixed-none-BASE", "variable-L-GMP", "variable-l-mgp", "", " ", "grid64", "x-y-z"]
condition_lists = st.one_of(
    st.none(), st.text(max_size=40), st.lists(st.sampled_from(CONDITION_IDS), max_size=4).map(",".join)
)


int_flags = st.lists(st.tuples(st.sampled_from(INT_FLAGS), small_or_refused.map(str)), max_size=3)


@given(int_flags, condition_lists)
def test_generated_flags(flags, conditions):
    argv = [x for pair in flags for x in pair]
    if conditions is not None:
        argv.append(f"--conditions={conditions}")  # one token, even when it starts with '-'
        if conditions.strip() in ("grid64", "grid128"):
            argv += ["--reps", "1", "--max-rounds", "2"]  # a whole grid stays a short run
    _run(to_toml(BASE).encode(), *argv)
