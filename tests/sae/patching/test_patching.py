"""Activation patching: the hook on the real SmolLM2, batching, the pass's resume, statistics."""

import math

import pandas as pd
import pytest
import torch

from harness.backends.formatter import PromptFormatter
from harness.config import ModelConfig
from harness.game.prompts import build_prompt
from harness.game.rules import GameRules
from sae.hooks import capture_residual, edit_residual
from sae.model import SAE, SAEConfig
from sae.patching.generate import Row, RowPatch, TrialResult, row_patches
from sae.patching.prompts import build_test_prompts, plan_history
from sae.patching.stats import classify, compare_patches, select_features
from sae.patching.trials import Condition, PatchSettings, Trial, UnitLine, read_lines, run_pass
from sae.stats import benjamini_hochberg
from tests.sae.builders import random_weights

LAYER = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_sae(seed: int = 0, scale: float = 0.5) -> SAE:
    w = random_weights(576, 64, seed=seed)
    w["threshold"][0] = 1e9  # feature 0 never fires
    cfg = SAEConfig(
        layout="memory", path="test", d_model=576, d_sae=64, input_scale=scale, output_scale=scale
    )
    return SAE(cfg, **w)


# --- test prompts (pure) -------------------------------------------------------------------------


def test_test_prompts_reach_their_balances(smollm2_path):
    fmt = PromptFormatter.from_pretrained(smollm2_path, "chat")
    prompts = build_test_prompts(fmt, "chat")
    safe, risky = prompts["safe"], prompts["risky"]
    assert (safe.balance, safe.condition.bet_type) == (140, "fixed")
    assert (risky.balance, risky.condition.bet_type) == (20, "variable")
    assert risky.state.consecutive_losses == 4 and "Current balance: $20\n" in risky.text
    assert risky.rendered == fmt.render(build_prompt(risky.state, risky.condition, GameRules(), "chat"))
    rules = GameRules(initial_balance=30, max_rounds=10)
    for bet_type, target in (("fixed", 140), ("variable", 20), ("variable", 140)):
        rounds = plan_history(30, target, bet_type, rules)
        balance = 30
        for bet, win in rounds:
            balance += -bet + (3 * bet if win else 0)
        assert balance == target


# --- the hook on the real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator(smollm2_path):
    from sae.patching.generate import Generator

    cfg = ModelConfig(name="smollm2", path=smollm2_path, style="chat", dtype="float32")
    return Generator.load(cfg, device="cpu", max_new_tokens=4, temperature=0.7)


@pytest.fixture(scope="module")
def prompts(generator):
    return build_test_prompts(generator.formatter, "chat")


def _residual(model, ids, edits=None):
    with edit_residual(model, edits or {}), capture_residual(model, [LAYER]) as got, torch.no_grad():
        model(input_ids=ids, use_cache=False)
    return got[LAYER].clone()


@pytest.mark.model
def test_patch_changes_only_the_feature_at_the_last_position(generator, prompts):
    sae = tiny_sae()
    ids = torch.tensor([generator.formatter.encode(prompts["safe"].rendered)[-40:]] * 3)  # short: CPU time
    h0 = _residual(generator.model, ids)
    features, targets = torch.tensor([5, 9, 7]), torch.tensor([2.5, 0.0, 1.0])
    mask = torch.tensor([True, True, False])
    h1 = _residual(generator.model, ids, {LAYER: RowPatch(sae, features, targets, mask)})
    assert torch.equal(h1[:, :-1], h0[:, :-1])  # earlier positions untouched, bit for bit
    assert torch.equal(h1[2], h0[2])  # unmasked row untouched
    a0 = sae.encode(h0[:, -1])
    for i in (0, 1):
        f = int(features[i])
        expected = h0[i, -1] + (targets[i] - a0[i, f]) * sae.W_dec[f] / 0.5
        assert torch.allclose(h1[i, -1], expected, atol=1e-5)
        # = the reconstruction with feature f set to the target, plus the unchanged reconstruction error
        edited = a0[i].clone()
        edited[f] = targets[i]
        error = h0[i, -1] - sae.decode(a0[i])
        assert torch.allclose(h1[i, -1], sae.decode(edited) + error, atol=1e-4)
    assert not torch.allclose(h1[0, -1], h0[0, -1])
    assert torch.allclose(sae.encode(h0[:, -1], features), a0[torch.arange(3), features], atol=1e-5)


@pytest.mark.model
def test_patch_to_current_value_is_a_no_op(generator, prompts):
    sae = tiny_sae()
    ids = torch.tensor([generator.formatter.encode(prompts["risky"].rendered)[-40:]] * 2)
    h0 = _residual(generator.model, ids)
    features = torch.tensor([5, 11])
    current = sae.encode(h0[:, -1])[torch.arange(2), features]
    h1 = _residual(
        generator.model, ids, {LAYER: RowPatch(sae, features, current, torch.tensor([True, True]))}
    )
    assert torch.allclose(h1, h0, atol=1e-6, rtol=0)


@pytest.mark.model
def test_noop_patch_with_cached_prefix_gives_the_games_backend_answers(generator, prompts):
    """Same seeds: the pass's generation (prompt prefix cached once, a feature that never fires held
    at 0 by the hook) gives exactly the answers of the games' own backend call."""
    from harness.backends.base import GenerationRequest

    ids = generator.formatter.encode(prompts["risky"].rendered)
    seeds = [1, 2, 3]
    requests = [GenerationRequest(request_id=str(s), prompt="", prompt_token_ids=ids, seed=s, max_tokens=4)
                for s in seeds]
    plain = [r.text for r in generator.backend.generate_batch(requests)]
    noop = [Row("risky", s, LAYER, 0, 0.0) for s in seeds]
    assert generator.generate(noop, ids, {LAYER: tiny_sae()}) == plain


@pytest.mark.model
def test_constrained_patching_answers_as_the_constrained_games_do(generator):
    """A constrained run's patching asks as its games did: the prompt ends at the cue, every answer
    matches the decision pattern and is read as the model's decision, and a no-op patch gives
    exactly the games' own constrained backend answers for the same seeds."""
    from harness.backends.base import GenerationRequest
    from harness.game.prompts import DECISION_MAX_TOKENS, DECISION_PATTERN

    prompts = build_test_prompts(generator.formatter, "chat", decision="constrained")
    risky = prompts["risky"]
    assert risky.rendered.endswith("Final Decision:") and risky.describe()["decision"] == "constrained"
    ids = generator.formatter.encode(risky.rendered)
    seeds = [1, 2, 3, 4]
    requests = [GenerationRequest(request_id=str(s), prompt="", prompt_token_ids=ids, seed=s,
                                  max_tokens=DECISION_MAX_TOKENS, decision_pattern=DECISION_PATTERN)
                for s in seeds]
    games = [r.text for r in generator.backend.generate_batch(requests)]
    noop = [Row("risky", s, LAYER, 0, 0.0) for s in seeds]
    assert generator.generate(noop, ids, {LAYER: tiny_sae()}, constrained=True) == games
    results = generator.run(noop, {"risky": risky}, {LAYER: tiny_sae()})
    assert [r.kind for r in results] == ["final_decision"] * 4
    assert all(r.action in ("bet", "stop") for r in results)


@pytest.mark.model
def test_batched_rows_equal_single_rows(generator, prompts):
    sae = tiny_sae()
    rows = [
        Row("safe", 11), Row("safe", 12, LAYER, 5, 3.0), Row("safe", 13, LAYER, 9, 0.0),
        Row("safe", 14, LAYER, 5, 1.0),
    ]
    ids = generator.formatter.encode(prompts["safe"].rendered)
    short = torch.tensor([ids[-40:]])
    together = _residual(generator.model, short.repeat(4, 1), row_patches(rows, {LAYER: sae}))
    for i, r in enumerate(rows):
        alone = _residual(generator.model, short, row_patches([r], {LAYER: sae}))
        assert torch.allclose(together[i], alone[0], atol=1e-4)
    batched = generator.generate(rows[:3], ids, {LAYER: sae})
    assert generator.generate(rows[1:2], ids, {LAYER: sae}) == batched[1:2]


# --- the pass: resume (fake generator) -----------------------------------------------------------


class FakeGenerator:
    """Answers 'stop' on the safe prompt and 'bet $20' on the risky one; can die after some calls."""

    def __init__(self, die_after: int | None = None):
        self.calls, self.die_after = [], die_after

    def run(self, rows, prompts, saes):
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise KeyboardInterrupt
        self.calls.append(rows)
        return [TrialResult(r.seed, "stop" if r.prompt == "safe" else "bet",
                            None if r.prompt == "safe" else 20, "final_decision", "x") for r in rows]


def test_pass_resumes_after_a_kill(tmp_path, smollm2_path):
    prompts = build_test_prompts(PromptFormatter.from_pretrained(smollm2_path, "chat"), "chat")
    feats = [{"layer": L, "feature": f, "target_safe": 0.0, "target_risky": 1.0, "direction": "risky"}
             for L, f in ((2, 1), (2, 4), (5, 3))]
    settings = PatchSettings(trials=2, max_new_tokens=4)
    loaded = []
    with pytest.raises(KeyboardInterrupt):  # baseline; feature 1 in two calls (8 rows > 4); dies
        run_pass(FakeGenerator(die_after=3), prompts, feats, loaded.append, settings, tmp_path, batch_size=4)
    assert [u.type for u in read_lines(tmp_path / "patch_trials.jsonl")] == ["baseline", "feature"]
    with open(tmp_path / "patch_trials.jsonl", "a") as f:
        f.write('{"type": "feature", "layer": 2, "feat')  # torn line of a killed writer
    gen = FakeGenerator()
    lines = run_pass(gen, prompts, feats, loaded.append, settings, tmp_path, batch_size=8)
    assert [(u.layer, u.feature) for u in lines if u.type == "feature"] == [(2, 1), (2, 4), (5, 3)]
    # no baseline rerun
    assert {(r.layer, r.feature) for batch in gen.calls for r in batch} == {(2, 4), (5, 3)}
    assert len(read_lines(tmp_path / "patch_trials.jsonl")) == 4
    seeds = [t.seed for t in lines[0].conditions[0].trials]
    assert seeds == [t.seed for t in lines[-1].conditions[0].trials]  # common random numbers
    with pytest.raises(Exception, match="other settings"):
        run_pass(gen, prompts, feats, loaded.append, settings.model_copy(update={"trials": 3}), tmp_path)


# --- statistics (hand-made) ----------------------------------------------------------------------


def _cond(prompt, patch, hits, n=50, unparsed=0):
    """n trials: `hits` hits, then `unparsed` unreadable answers, then misses."""
    yes = ("stop", None, "final_decision") if prompt == "safe" else ("bet", 20, "final_decision")
    no, bad = ("bet", 10, "final_decision"), (None, None, "unparsed")
    trial = [yes if i < hits else bad if i < hits + unparsed else no for i in range(n)]
    return Condition(prompt=prompt, patch=patch, target=None if patch == "baseline" else 1.0,
                     trials=[Trial(seed=i, action=a, bet=b, kind=k, response="")
                             for i, (a, b, k) in enumerate(trial)])


def _feature(feature, safe_stop, safe_high, risky_stop, risky_high, direction="risky"):
    return UnitLine(type="feature", layer=1, feature=feature, direction=direction, conditions=[
        _cond("safe", "safe", safe_stop), _cond("risky", "safe", safe_high),
        _cond("safe", "risky", risky_stop), _cond("risky", "risky", risky_high)])


def _fisher_two_sided(a, b, c, d):
    """Hand-rolled: sum of hypergeometric probabilities not above the observed table's."""
    n1, n2, k = a + b, c + d, a + c
    prob = [math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n1 + n2, k)
            for x in range(max(0, k - n2), min(k, n1) + 1)]
    observed = math.comb(n1, a) * math.comb(n2, c) / math.comb(n1 + n2, k)
    return sum(p for p in prob if p <= observed * (1 + 1e-7))


def test_statistics_on_a_hand_made_case():
    baseline = UnitLine(
        type="baseline", conditions=[_cond("safe", "baseline", 10), _cond("risky", "baseline", 10)]
    )
    lines = [baseline,
             _feature(1, 30, 10, 10, 10),  # safe patch: stop rate 0.2 -> 0.6
             _feature(2, 10, 10, 10, 35),  # risky patch: high bets 0.2 -> 0.7
             _feature(3, 12, 9, 10, 11),  # nothing
             _feature(4, 25, 10, 10, 40, direction="safe"),  # both; risky larger (+0.6 vs +0.3)
             _feature(5, 10, 10, 10, 14)]  # +0.08: below the effect threshold even if significant
    tests = compare_patches(lines, alpha=0.05, min_effect=0.1)
    assert len(tests) == 40  # 5 features x 4 conditions x (behaviour, unparsed share)
    row = tests[(tests["feature"] == 1) & (tests["patch"] == "safe") & (tests["prompt"] == "safe")].iloc[0]
    assert (row["rate"], row["base_rate"], row["change"]) == (0.6, 0.2, pytest.approx(0.4))
    assert row["p"] == pytest.approx(_fisher_two_sided(30, 20, 10, 40), rel=1e-9)
    assert tests["q"].tolist() == pytest.approx(benjamini_hochberg(tests["p"].to_numpy()).tolist())
    cls = classify(tests).set_index("feature")["classification"].to_dict()
    assert cls == {1: "safe", 2: "risky", 3: "none", 4: "risky", 5: "none"}


def test_unreadable_answers_are_not_misses_and_a_format_break_is_labelled():
    """Baseline stop rate 10/50; a safe patch that leaves 5 readable answers, all stops: counted over
    all trials it would be 0.1 (no change), over readable ones it is 1.0 -- and 90% unparsed marks
    the feature breaks_format, not safe. A patch that only turns misses into unreadable answers
    (stop rate over readable ones 10/25 vs 10/50) is breaks_format too, never safe."""
    baseline = UnitLine(
        type="baseline", conditions=[_cond("safe", "baseline", 10), _cond("risky", "baseline", 10)]
    )
    broken = _feature(1, 5, 10, 10, 10)
    broken.conditions[0] = _cond("safe", "safe", 5, unparsed=45)
    misses_lost = _feature(2, 10, 10, 10, 10)
    misses_lost.conditions[0] = _cond("safe", "safe", 10, unparsed=25)
    clean = _feature(3, 30, 10, 10, 10)
    tests = compare_patches([baseline, broken, misses_lost, clean])
    safe_stop = tests[(tests["patch"] == "safe") & (tests["prompt"] == "safe")].set_index(
        ["feature", "metric"]
    )
    assert safe_stop.loc[(1, "stop_rate"), ["readable", "rate"]].tolist() == [5, 1.0]
    assert safe_stop.loc[(1, "unparsed"), "rate"] == 0.9 and safe_stop.loc[(1, "unparsed"), "significant"]
    assert safe_stop.loc[(2, "stop_rate"), "rate"] == 0.4
    assert safe_stop.loc[(1, "unparsed"), "p"] == pytest.approx(_fisher_two_sided(45, 5, 0, 50), rel=1e-9)
    # one family
    assert tests["q"].tolist() == pytest.approx(benjamini_hochberg(tests["p"].to_numpy()).tolist())
    table = classify(tests).set_index("feature")
    assert table["classification"].to_dict() == {1: "breaks_format", 2: "breaks_format", 3: "safe"}
    assert table.loc[1, "breaks_format"] and not table.loc[3, "breaks_format"]
    assert table.loc[1, "safe_patch_safe_unparsed"] == 0.9


def test_feature_selection():
    t = pd.DataFrame({"layer": [1, 1, 1, 2], "feature": [5, 6, 7, 5], "mean_bankrupt": [0.0] * 4,
                      "mean_stopped": [0.0] * 4, "d": [0.4, -0.9, 0.5, 0.3],
                      "significant": [True, True, False, True]})
    assert select_features(t, top=1)[["layer", "feature"]].values.tolist() == [[1, 6], [2, 5]]
    assert len(select_features(t, include_all=True, layers=[1])) == 3
    assert select_features(t, ids=[(2, 5), (1, 7)])["feature"].tolist() == [5, 7]
