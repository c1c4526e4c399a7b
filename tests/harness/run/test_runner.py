"""The runner with a scripted backend: guards, outcomes, reproducibility, records."""

import random

import pytest

from harness.backends.base import GenerationRequest
from harness.backends.formatter import PromptFormatter
from harness.backends.scripted import ScriptedBackend
from harness.config import load_config
from harness.game.conditions import parse_condition_id
from harness.run.runner import GameRunner, GameSpec, plan_games


def make_config(**over):
    base = {"backend.kind": "scripted", "game.max_rounds": 30}
    base.update(over)
    return load_config(None, base)


async def play(config, backend, specs):
    runner = GameRunner(config, backend, PromptFormatter(None, "chat"), run_id="t")
    games = []

    async def on_game(g):
        games.append(g)

    async def on_error(msg, gid):
        raise AssertionError(msg)

    await runner.run(specs, on_game, on_error)
    return {g.game_id: g for g in games}, runner.stats


def spec(cond="fixed-none-BASE", rep=0, seed=0):
    return GameSpec(parse_condition_id(cond), rep, seed)


async def test_empty_answers_end_invalid_after_bounded_retries():
    config = make_config(**{"guard.max_retries": 5})
    backend = ScriptedBackend(["", "   "])
    games, stats = await play(config, backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    assert game.outcome == "invalid" and "empty" in game.invalid_reason
    assert len(backend.requests) == 6  # 1 + 5 retries, never forever
    assert game.rounds[-1].empty_retries == 6 and game.rounds[-1].retries == 5
    assert stats.empty_retries == 6
    assert len({r.seed for r in backend.requests}) == 6  # every retry has a new seed


async def test_empty_then_answer_counts_the_retries():
    backend = ScriptedBackend(["", "", "Final Decision: Stop"])
    games, _ = await play(make_config(), backend, [spec()])
    r = games["fixed-none-BASE-rep000"].rounds[-1]
    assert (r.decision, r.retries, r.empty_retries, r.parse_kind) == ("stop", 2, 2, "final_decision")


@pytest.mark.parametrize(
    "policy,outcome", [("no_decision", "no_decision"), ("stop", "no_decision"), ("invalid", "invalid")]
)
async def test_unreadable_answers_take_the_policy_never_a_stop(policy, outcome):
    config = make_config(**{"guard.unparsed_policy": policy, "guard.max_retries": 2, "guard.extract": False})
    backend = ScriptedBackend(["I like slot machines."])
    games, _ = await play(config, backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    assert game.outcome == outcome and len(backend.requests) == 3
    last = game.rounds[-1]
    assert last.parse_kind == "unparsed" and last.unparsed_retries == 3 and last.decision is None


def answer_free_then_extract(request: GenerationRequest) -> str:
    """Free answers without a decision; the constrained step (a pattern is set) answers Stop."""
    return "Stop" if request.decision_pattern else "If I lose again, I will stop."


async def test_extraction_continues_the_conversation_with_the_last_answer():
    config = make_config(**{"guard.max_retries": 1})
    backend = ScriptedBackend([answer_free_then_extract])
    games, stats = await play(config, backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    last = game.rounds[-1]
    assert game.outcome == "stopped" and last.parse_kind == "extracted" and last.decision == "stop"
    assert len(backend.requests) == 3 and last.unparsed_retries == 2 and last.retries == 2
    extract = backend.requests[-1]
    assert extract.decision_pattern is not None and extract.max_tokens < 20
    assert extract.prompt == last.extract_prompt
    assert last.extract_prompt == last.prompt + "If I lose again, I will stop.\nFinal Decision:"
    assert last.extract_response == "Stop" and stats.extracted == 1


def unreadable_then_empty(answers: list[str]):
    """Free answers in order (cycling), the constrained step always answering Bet $30."""
    it = iter(answers * 10)
    return lambda request: "Bet $30" if request.decision_pattern else next(it)


@pytest.mark.parametrize(
    "answers",
    [
        ["I like slot machines.", "Maybe.", ""],  # the last attempt empty: extraction still runs
        ["Hmm, the odds.", "", ""],
        ["", "", "I wonder what to do."],
    ],
)
async def test_extraction_runs_whenever_no_attempt_was_readable(answers):
    config = make_config(**{"guard.max_retries": 2, "game.max_rounds": 1})
    backend = ScriptedBackend([unreadable_then_empty(answers)])
    games, stats = await play(config, backend, [spec("variable-none-BASE")])
    last = games["variable-none-BASE-rep000"].rounds[-1]
    assert (last.parse_kind, last.decision, last.bet) == ("extracted", "bet", 30) and stats.extracted == 1
    text = [a for a in answers if a][-1]  # the step continues the last answer that had text
    assert last.response == text and last.extract_prompt == last.prompt + text + "\nFinal Decision:"
    assert backend.requests[-1].decision_pattern is not None and len(backend.requests) == 4


async def test_all_empty_answers_get_no_extraction():
    backend = ScriptedBackend([lambda r: "Bet $30" if r.decision_pattern else ""])
    games, stats = await play(make_config(**{"guard.max_retries": 2}), backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    assert game.outcome == "invalid" and len(backend.requests) == 3 and stats.extracted == 0
    assert game.rounds[-1].extract_prompt is None


async def test_extraction_after_timeouts_continues_the_answer_that_came():
    calls = iter(range(100))  # the first free answer comes at once, the re-ask times out

    config = make_config(**{"guard.request_timeout_s": 0.2, "guard.max_retries": 1, "game.max_rounds": 1})

    class FirstFastThenSlow(ScriptedBackend):
        async def generate(self, request):
            if not request.decision_pattern and next(calls) > 0:
                self.delay_s = 1.0
            else:
                self.delay_s = 0.0
            return await super().generate(request)

    backend = FirstFastThenSlow([lambda r: "Stop" if r.decision_pattern else "I like the lights."])
    games, _ = await play(config, backend, [spec()])
    last = games["fixed-none-BASE-rep000"].rounds[-1]
    assert (last.parse_kind, last.decision, last.timeouts) == ("extracted", "stop", 1)
    assert last.response == "I like the lights."


async def test_failed_extraction_falls_to_the_policy():
    backend = ScriptedBackend(["I like slot machines."])  # the constrained step writes nothing either
    games, _ = await play(make_config(**{"guard.max_retries": 0}), backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    assert game.outcome == "no_decision" and len(backend.requests) == 2
    assert game.rounds[-1].extract_response == "" and game.rounds[-1].parse_kind == "unparsed"


async def test_constrained_mode_asks_under_the_pattern_after_the_cue():
    config = make_config(**{"game.decision": "constrained"})
    backend = ScriptedBackend(["I think so. Bet $20 now", "Stop"])
    games, _ = await play(config, backend, [spec("variable-none-BASE")])
    game = games["variable-none-BASE-rep000"]
    assert [r.decision for r in game.rounds] == ["bet", "stop"] and game.outcome == "stopped"
    assert game.rounds[0].bet == 20 and game.rounds[0].response == " Bet $20"
    assert {r.parse_kind for r in game.rounds} == {"final_decision"}
    assert all(r.decision_pattern and r.prompt.endswith("Final Decision:") for r in backend.requests)


async def test_timeouts_are_bounded():
    config = make_config(**{"guard.request_timeout_s": 0.05, "guard.max_retries": 1})
    backend = ScriptedBackend(["Final Decision: Stop"], delay_s=1.0)
    games, _ = await play(config, backend, [spec()])
    game = games["fixed-none-BASE-rep000"]
    assert game.outcome == "invalid" and game.rounds[-1].timeouts == 2


async def test_forced_first_round_is_a_real_round_in_history():
    backend = ScriptedBackend(["Final Decision: Stop"])
    games, _ = await play(make_config(), backend, [spec("variable-W-GMP"), spec("fixed-L-BASE")])
    won, lost = games["variable-W-GMP-rep000"], games["fixed-L-BASE-rep000"]
    assert won.rounds[0].forced and won.rounds[0].win and won.rounds[0].balance_after == 120
    assert lost.rounds[0].forced and not lost.rounds[0].win and lost.final_balance == 90
    assert "Round 1: Bet $10, WIN, Balance $120" in backend.requests[0].prompt or \
        "Round 1: Bet $10, WIN, Balance $120" in backend.requests[1].prompt
    assert all("First game result" not in r.prompt for r in backend.requests)


async def test_balances_follow_the_rounds_and_bankruptcy():
    backend = ScriptedBackend(["Final Decision: Bet $40"])
    config = make_config(**{"repetitions": 20})
    specs = [GameSpec(parse_condition_id("variable-none-GMP"), rep, 3) for rep in range(20)]
    games, _ = await play(config, backend, specs)
    assert any(g.outcome == "bankrupt" for g in games.values())
    for g in games.values():
        bal = 100
        for r in g.rounds:
            assert r.balance_before == bal
            if r.bet is not None:
                assert r.balance_after == bal - r.bet + (3 * r.bet if r.win else 0)
            bal = r.balance_after
        assert g.final_balance == bal and (g.outcome != "bankrupt" or bal == 0)
        assert g.total_bet == sum(r.bet for r in g.rounds if r.bet)


def seeded_answer(request: GenerationRequest) -> str:
    """An answer that depends only on the request's seed (like a seeded sampler)."""
    rng = random.Random(request.seed)
    return "Final Decision: Stop" if rng.random() < 0.2 else f"Final Decision: Bet ${rng.randint(5, 40)}"


async def test_results_do_not_depend_on_scheduling_order():
    config = make_config(**{"conditions.grid": "128", "seed": 11})
    specs = plan_games(config)[:24]
    a, _ = await play(config.model_copy(update={"concurrency": 24}), ScriptedBackend([seeded_answer]), specs)
    shuffled = specs[:]
    random.Random(5).shuffle(shuffled)
    b, _ = await play(config.model_copy(update={"concurrency": 3}),
                      ScriptedBackend([seeded_answer], delay_s=0.001), shuffled)

    def strip(g):
        return g.model_dump(exclude={"started", "wall_s", "run_id"}, exclude_none=True) | {
            "rounds": [r.model_dump(exclude={"latency_s"}) for r in g.rounds]
        }

    assert a.keys() == b.keys()
    assert all(strip(a[k]) == strip(b[k]) for k in a)
    # another run seed gives other games
    c, _ = await play(
        config, ScriptedBackend([seeded_answer]), [GameSpec(s.condition, s.repetition, 12) for s in specs]
    )
    assert any(strip(a[k])["rounds"] != strip(c[k])["rounds"] for k in a)


def test_plan_has_stable_unique_ids():
    config = make_config(repetitions=3)
    ids = [s.game_id for s in plan_games(config)]
    assert len(ids) == 384 == len(set(ids))
    assert [s.seed for s in plan_games(config)] == [s.seed for s in plan_games(config)]


@pytest.mark.parametrize("concurrency", [1, 7, 50])
async def test_games_are_in_flight_together_up_to_the_bound(concurrency):
    config = make_config(concurrency=concurrency)
    specs = [GameSpec(parse_condition_id("fixed-none-BASE"), rep, 0) for rep in range(50)]
    backend = ScriptedBackend(["Final Decision: Stop"], delay_s=0.01)
    games, _ = await play(config, backend, specs)
    assert len(games) == 50
    assert backend.peak_in_flight == concurrency
