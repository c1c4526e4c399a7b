"""Feature extraction and pathway logic with planted effects (a stub reader), plus the shard store."""

import random

import numpy as np
import pandas as pd
import pytest
import torch

from sae.features import extract_features, last_decision_prompt, write_result
from sae.games import group_of, split_groups
from sae.model import SAE, SAEConfig
from sae.pathway.shards import ShardStore, ShardWriter
from sae.pathway.tracking import compare_pathway, extract_pathway, select_games
from sae.stats import Thresholds
from tests.helpers import make_game

D_MODEL, D_SAE = 4, 6


class StubReader:
    """Stands in for ResidualReader: the residual of a prompt is a vector parsed from its text."""

    batch_size = 3

    def last_token(self, prompts, layers):
        order = list(range(len(prompts)))
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            x = torch.tensor([[float(v) for v in prompts[i].split()] for i in idx])
            yield idx, {L: x * (L + 1) for L in layers}


def identity_sae() -> SAE:
    """Features 0-3 copy the residual's coordinates (ReLU), 4-5 are never active."""
    w_enc = torch.zeros(D_MODEL, D_SAE)
    w_enc[:, :D_MODEL] = torch.eye(D_MODEL)
    cfg = SAEConfig(layout="memory", path="identity", d_model=D_MODEL, d_sae=D_SAE)
    return SAE(cfg, w_enc, w_enc.T.clone(), torch.zeros(D_SAE), torch.zeros(D_MODEL), 0.0)


def games_with_planted_feature(n_each: int = 12, seed: int = 0):
    """Bankrupt games: feature 0 high at the last decision; stopped games: feature 1 high."""
    rng = np.random.default_rng(seed)
    games = []
    for rep in range(n_each):
        noise = rng.uniform(0, 0.2, size=(2, D_MODEL))
        risky, safe = noise[0] + [2, 0, 0.5, 0], noise[1] + [0, 2, 0.5, 0]
        g = make_game([(50, False), (50, False)], repetition=rep, prompt="0 0 0 0")
        last = g.rounds[-1].model_copy(update={"prompt": " ".join(map(str, risky))})
        games.append(g.model_copy(update={"rounds": g.rounds[:-1] + [last]}))
        s = make_game([(10, True)], repetition=100 + rep, prompt="0 0 0 0")
        last = s.rounds[-1].model_copy(update={"prompt": " ".join(map(str, safe))})
        games.append(s.model_copy(update={"rounds": s.rounds[:-1] + [last]}))
    games.append(make_game([(10, True)] * 3, end="max_rounds", repetition=999, prompt="9 9 9 9"))
    return games


def test_last_decision_prompt_skips_forced_rounds():
    g = make_game([(10, True), (10, False)], forced_first=True, prompt="P")
    assert last_decision_prompt(g) == "P"
    forced_only = make_game([(10, False)], forced_first=True, end="max_rounds", prompt="P")
    assert last_decision_prompt(forced_only) is None


def test_features_find_the_planted_features(tmp_path):
    games = games_with_planted_feature()
    saes = {2: identity_sae(), 5: identity_sae()}
    result = extract_features(games, saes, StubReader(), Thresholds())
    t = result.table.set_index(["layer", "feature"])
    assert result.meta["n_bankrupt"] == 12 and result.meta["n_stopped"] == 12
    assert result.meta["games_dropped"] == {
        "max_rounds": 1, "no_decision": 0, "invalid": 0, "stopped_by_fallback": 0, "no_prompt": 0,
    }
    for L in (2, 5):
        assert t.loc[(L, 0), "direction"] == "risky" and t.loc[(L, 0), "significant"]
        assert t.loc[(L, 1), "direction"] == "safe" and t.loc[(L, 1), "significant"]
        assert t.loc[(L, 0), "mean_bankrupt"] == pytest.approx(2.1 * (L + 1), rel=0.05)
        assert t.loc[(L, 0), "active_bankrupt"] == 1.0
        assert not t.loc[(L, 2), "significant"]  # same mean in both groups
        assert (L, 4) not in t.index  # constant in both groups: not tested
    assert len(result.table) == 2 * 4  # q over all layers together: 8 tests
    s = result.summary.set_index("layer")
    assert s.loc[2, "significant"] == 2 and s.loc[2, "constant"] == 2 and s.loc[2, "risky"] == 1
    paths = write_result(result, tmp_path)
    back = pd.read_parquet(paths["table"])
    assert list(back.columns) == [
        "layer", "feature", "mean_bankrupt", "mean_stopped", "active_bankrupt", "active_stopped",
        "d", "t", "p", "q", "direction", "significant",
    ]
    assert len(pd.read_csv(paths["csv"])) == len(back)


def test_features_need_both_groups():
    from harness.errors import RunDirError

    games = [g for g in games_with_planted_feature() if g.outcome != "stopped"]
    with pytest.raises(RunDirError, match="0 stopped"):
        extract_features(games, {0: identity_sae()}, StubReader())


def test_shard_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    writer = ShardWriter(tmp_path, rows_per_shard=5)
    dense = {}
    for step in range(4):
        for L in (1, 7):
            acts = torch.tensor(rng.random((3, 50)) * (rng.random((3, 50)) > 0.8), dtype=torch.float32)
            rows = [{"game_id": f"g{i}", "outcome": "stopped", "round": step + 1, "step": step, "to_end": 0,
                     "layer": L}
                    for i in range(3)]
            writer.add(rows, acts)
            for i in range(3):
                dense[(f"g{i}", step + 1, L)] = acts[i].numpy()
    index = writer.close({"layers": [1, 7], "d_sae": {"1": 50, "7": 50}})
    assert writer.shards > 1 and len(index) == 24
    nnz = int(index["n_active"].sum())
    size = sum(f.stat().st_size for f in tmp_path.glob("shard-*.safetensors"))
    assert size <= 8 * nnz + 8 * (24 + writer.shards) + 1024 * writer.shards  # 8 bytes per active feature
    store = ShardStore(tmp_path)
    for (gid, rnd, L), vec in dense.items():
        assert np.array_equal(store.dense(gid, rnd, L), vec)
    rows, m = store.layer(7)
    assert m.shape == (12, 50) and (rows["layer"] == 7).all()
    assert (rows["n_active"].to_numpy() == np.diff(m.indptr)).all()


def test_pathway_tracks_planted_feature(tmp_path):
    games = games_with_planted_feature(n_each=6)
    chosen, sample = select_games(games, n=8)
    assert sorted(g.outcome for g in chosen) == ["bankrupt"] * 4 + ["stopped"] * 4
    assert sample["game_ids"] == [g.game_id for g in chosen]
    index = extract_pathway(
        chosen, {0: identity_sae(), 3: identity_sae()}, StubReader(), tmp_path, rows_per_shard=7
    )
    # bankrupt games: 2 decisions each; stopped: 1 bet + 1 stop decision
    assert len(index) == 8 * 2 * 2
    result = compare_pathway(ShardStore(tmp_path), top_k=2)
    top = result.top[result.top["layer"] == 3].set_index("feature")
    assert set(top.index) == {0, 1}
    assert top.loc[0, "direction"] == "risky" and top.loc[1, "direction"] == "safe"
    steps = result.steps
    last = steps[(steps["layer"] == 0) & (steps["align"] == "to_end") & (steps["step"] == 0)].set_index(
        "group"
    )
    assert last.loc["bankrupt", "top_risky_mean"] > 1.5 > last.loc["stopped", "top_risky_mean"]
    assert last.loc["stopped", "top_safe_mean"] > 1.5 > last.loc["bankrupt", "top_safe_mean"]
    first = steps[(steps["layer"] == 0) & (steps["align"] == "round") & (steps["step"] == 1)]
    assert (first["top_risky_mean"] == 0).all()  # "0 0 0 0" prompts before the end
    assert set(result.layers["layer"]) == {0, 3}


def rotated_sae(seed: int = 0) -> SAE:
    """Features 0-3 read a random rotation of the residual (ReLU), 4-5 never fire: feature i is not
    hidden dim i, so reading hidden dims as feature ids (the authors' defect) gives other answers."""
    q, _ = torch.linalg.qr(torch.randn(D_MODEL, D_MODEL, generator=torch.Generator().manual_seed(seed)))
    w_enc = torch.zeros(D_MODEL, D_SAE)
    w_enc[:, :D_MODEL] = q
    cfg = SAEConfig(layout="memory", path="rotated", d_model=D_MODEL, d_sae=D_SAE)
    return SAE(cfg, w_enc, w_enc.T.clone(), torch.zeros(D_SAE), torch.zeros(D_MODEL), 0.0)


def games_along(directions: torch.Tensor, n_each: int = 12, seed: int = 0):
    """Bankrupt games' last residual ~ 2 * directions[0], stopped games' ~ 2 * directions[1]."""
    rng = np.random.default_rng(seed)
    games = []
    for rep in range(n_each):
        for group, d, bets in (
            ("bankrupt", directions[0], [(50, False), (50, False)]), ("stopped", directions[1], [(10, True)])
        ):
            x = 2 * d.numpy() + rng.normal(0, 0.1, size=D_MODEL)
            g = make_game(bets, repetition=rep if group == "bankrupt" else 100 + rep, prompt="0 0 0 0")
            last = g.rounds[-1].model_copy(update={"prompt": " ".join(map(str, x))})
            games.append(g.model_copy(update={"rounds": g.rounds[:-1] + [last]}))
    return games


def test_feature_ids_are_sae_features_not_hidden_dims():
    sae = rotated_sae()
    q = sae.W_enc[:, :D_MODEL]
    games = games_along(q.T[:2])  # bankrupt along feature 0's direction, stopped along feature 1's
    table = extract_features(games, {0: sae}, StubReader()).table.set_index("feature")
    sig = table[table["significant"]]
    assert dict(sig["direction"]) == {0: "risky", 1: "safe"}
    # the defect: the same games, hidden dim i read as feature i, give another answer
    dims = extract_features(games, {0: identity_sae()}, StubReader()).table.set_index("feature")
    assert dict(dims[dims["significant"]]["direction"]) != dict(sig["direction"])


def test_groups_keep_voluntary_stops_only_and_count_the_rest():
    games = games_with_planted_feature(n_each=4)
    guessed = make_game([(10, True)], repetition=500, prompt="0 2 0.5 0")
    guessed = guessed.model_copy(update={
        "rounds": guessed.rounds[:-1] + [guessed.rounds[-1].model_copy(update={"parse_kind": "fallback"})]
    })
    no_decision = make_game([(10, True)], end="max_rounds", repetition=501).model_copy(
        update={"outcome": "no_decision"}
    )
    invalid = make_game([(10, True)], end="invalid", repetition=502)
    no_prompt = make_game([(50, False), (50, False)], repetition=503, prompt=None)
    kept, dropped = split_groups(games + [guessed, no_decision, invalid, no_prompt])
    assert dropped == {
        "max_rounds": 1, "no_decision": 1, "invalid": 1, "stopped_by_fallback": 1, "no_prompt": 1
    }
    assert guessed.game_id not in {g.game_id for g, _ in kept}
    assert group_of(guessed) is None and group_of(games[1]) == "stopped"
    meta = extract_features(games + [guessed], {0: identity_sae()}, StubReader()).meta
    assert meta["n_stopped"] == 4 and meta["games_dropped"]["stopped_by_fallback"] == 1


def conditions_games():
    """Bankrupt and voluntarily stopped games over three conditions, 6 / 6 / 2 of each group."""
    games = []
    for cond, n in (("variable-none-BASE", 6), ("fixed-none-BASE", 6), ("variable-W-GM", 2)):
        for rep in range(n):
            games.append(make_game([(50, False), (50, False)], condition=cond, repetition=rep))
            games.append(make_game([(10, True)], condition=cond, repetition=100 + rep))
    return games


def test_pathway_sample_is_seeded_stratified_and_order_free():
    games = conditions_games()
    chosen, sample = select_games(games, n=12, seed=3)
    assert sample["per_condition"]["bankrupt"] == {
        "fixed-none-BASE": 2, "variable-W-GM": 2, "variable-none-BASE": 2
    }
    assert sample["per_condition"]["stopped"] == sample["per_condition"]["bankrupt"]
    shuffled = list(games)
    random.Random(1).shuffle(shuffled)  # another file (completion) order
    again, _ = select_games(shuffled, n=12, seed=3)
    assert [g.game_id for g in again] == [g.game_id for g in chosen] == sample["game_ids"]
    others = {tuple(select_games(games, n=12, seed=s)[1]["game_ids"]) for s in range(4, 9)}
    assert len(others) > 1  # the seed matters
    uneven, s2 = select_games(games, n=20, seed=0)  # 10 per group: 4 + 4 + 2
    assert sorted(s2["per_condition"]["bankrupt"].values()) == [2, 4, 4]


def test_noise_constant_and_nan_features_are_neither_tested_nor_in_the_bh_family():
    """Feature 4: 3.0 plus a float32-rounding-sized echo of coordinates 0 and 2 (Welch p 5e-11 on
    those values): constant, not 'significant'. Feature 5: NaN weights (an SAE built in memory; load
    refuses them): in the table with NaN p and q, counted in p_nan; the other q-values are as without it."""
    games = games_with_planted_feature()
    clean = identity_sae()
    odd = identity_sae()
    odd.W_enc[0, 4] = odd.W_enc[2, 4] = 1e-7  # 0 or 1 float32 ulp above 3.0; 1 mostly in bankrupt games
    odd.b_enc[4] = 3.0
    odd.W_enc[0, 5] = float("nan")
    result = extract_features(games, {2: odd}, StubReader(), Thresholds())
    t = result.table.set_index(["layer", "feature"])
    assert (2, 4) not in t.index
    assert np.isnan(t.loc[(2, 5), "p"]) and np.isnan(t.loc[(2, 5), "q"]) and not t.loc[(2, 5), "significant"]
    assert t.loc[(2, 5), "direction"] == "none"
    assert result.meta["p_nan"] == 1 and result.meta["constant_rtol"] == 1e-4
    s = result.summary.set_index("layer")
    assert (s.loc[2, "tested"], s.loc[2, "constant"], s.loc[2, "p_nan"]) == (4, 1, 1)
    base = extract_features(games, {2: clean}, StubReader(), Thresholds()).table.set_index("feature")
    assert np.allclose(t.loc[2].loc[range(4), "q"], base.loc[range(4), "q"])
