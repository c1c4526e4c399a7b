"""`harness sae patch` and `harness sae words`: the run functions behind their registrars in
`sae/command.py` (imported only when one of them runs, since they pull in torch)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from harness.errors import ConfigError, RunDirError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _find_run_dir(path: Path) -> Path | None:
    for p in (path, *path.parents[:3]):
        if (p / "manifest.json").is_file() or (p / "games.jsonl").is_file():
            return p
    return None


def _manifest_config(run_dir: Path | None) -> dict:
    from harness.rundir.manifest import read_manifest

    try:
        manifest = None if run_dir is None else read_manifest(run_dir)
    except RunDirError:
        return {}
    return manifest.config if manifest is not None else {}


def resolve_inputs(args) -> tuple[Path | None, Path]:
    """(run dir or None, features table) from RUN_DIR_OR_FEATURES and --features."""
    target: Path = args.target
    if target.is_file():
        return _find_run_dir(target.parent), args.features or target
    if not target.is_dir():
        raise ConfigError(f"{target}: neither a run directory nor a features table")
    return target, args.features or target / "sae" / "features" / "features.parquet"


def _selected(args, table_path: Path):
    from sae.patching.stats import parse_ids, read_feature_table, select_features
    from sae.spec import parse_layers

    table = read_feature_table(table_path)
    chosen = select_features(
        table, top=args.top, layers=parse_layers(args.layers) if args.layers else None,
        ids=parse_ids(args.ids) if args.ids else None, include_all=args.all_features,
    )
    if getattr(args, "causal", None):
        import pandas as pd

        causal = pd.read_parquet(args.causal)
        causal = causal[causal["classification"].isin(["safe", "risky"])][
            ["layer", "feature", "classification"]
        ]
        chosen = chosen.merge(causal, on=["layer", "feature"], how="inner")
    if chosen.empty:
        raise ConfigError(
            f"{table_path}: no feature selected (none significant? try --all-features or --ids)"
        )
    return chosen


def _progress(run_dir: Path | None, args, model: str):
    from sae.progress import PassProgress

    wanted = not args.no_events and (run_dir is not None or args.events is not None)
    return PassProgress(run_dir or Path("."), "patching", model, events=wanted, file=args.events)


def _load_generator(args, model_cfg, gen_cfg: dict):
    from sae.patching.generate import Generator

    return Generator.load(
        model_cfg, device=args.device, dtype=args.dtype,
        max_new_tokens=args.max_new_tokens or gen_cfg.get("max_new_tokens", 256),
        temperature=args.temperature, top_p=args.top_p, stop=gen_cfg.get("stop", []),
    )


def _targets(chosen) -> list[dict]:
    """Per feature the two patch targets: the stopped group's mean (safe), the bankrupt one's (risky)."""
    return [
        {"layer": int(r["layer"]), "feature": int(r["feature"]), "target_safe": float(r["mean_stopped"]),
         "target_risky": float(r["mean_bankrupt"]), "direction": r.get("direction")}
        for r in chosen.to_dict("records")
    ]


def _sae_loader(args, folders: dict, generator, model_cfg, warnings: list[str]):
    """load_sae(layer) for the pass: one layer's SAE, its model checked against the run's (a
    foreign model is warned about once)."""
    from sae.spec import load_folders, model_warnings

    d_model = int(generator.model.config.hidden_size)
    names = [model_cfg.name, model_cfg.path, getattr(generator.model.config, "_name_or_path", None)]

    def load_sae(layer: int):
        sae = load_folders(
            {layer: folders[layer]}, device=generator.device, dtype=args.sae_dtype, d_model=d_model
        )[layer]
        if sae.cfg.model_name and not any(sae.cfg.model_name in w for w in warnings):
            warnings.extend(model_warnings({layer: sae}, names))
        return sae

    return load_sae


def _write_patch_results(args, lines, features: list[dict], meta: dict, out: Path):
    from sae.patching.stats import classify, compare_patches, write_report

    wanted = {(f["layer"], f["feature"]) for f in features}
    lines = [u for u in lines if u.type == "baseline" or (u.layer, u.feature) in wanted]
    tests = compare_patches(lines, args.alpha, args.min_effect)
    table = classify(tests)
    for name, frame in (("patch_tests", tests), ("patch_features", table)):
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    write_report(table, tests, lines, meta, out)
    return table


def run_patch(args) -> int:
    from harness.game.prompts import DECISION_MAX_TOKENS
    from harness.game.rules import GameRules
    from sae.patching.prompts import build_test_prompts
    from sae.patching.trials import PatchSettings, run_pass
    from sae.progress import finishing
    from sae.reader import run_model_config
    from sae.spec import resolve_spec

    run_dir, table_path = resolve_inputs(args)
    chosen = _selected(args, table_path)
    # the SAE folders are resolved before the model loads
    folders = resolve_spec(args.sae, sorted(int(x) for x in chosen["layer"].unique()))
    config = _manifest_config(run_dir)
    model_cfg = run_model_config(run_dir or table_path.parent, args.model, args.style)
    generator = _load_generator(args, model_cfg, config.get("generation") or {})
    prompts = build_test_prompts(
        generator.formatter, model_cfg.style, GameRules.model_validate(
            # not `decision`
            {k: v for k, v in (config.get("game") or {}).items() if k in GameRules.model_fields}
        ),
        decision=args.decision or (config.get("game") or {}).get("decision", "free"),
        safe_condition=args.safe_condition, safe_history=args.safe_history,
        risky_condition=args.risky_condition, risky_history=args.risky_history,
    )
    decision = prompts["safe"].decision
    settings = PatchSettings(
        trials=args.trials, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=DECISION_MAX_TOKENS if decision == "constrained" else generator.max_new_tokens,
        decision=decision,
        seed=args.seed if args.seed is not None else int(config.get("seed", 0)), model=model_cfg.name,
        style=model_cfg.style, prompts={name: p.describe() for name, p in prompts.items()},
    )
    features = _targets(chosen)
    out = args.out or (run_dir / "sae" / "patching" if run_dir else table_path.parent / "patching")
    report = _progress(run_dir, args, model_cfg.name)
    warnings: list[str] = []
    load_sae = _sae_loader(args, folders, generator, model_cfg, warnings)
    t0 = time.perf_counter()
    with finishing(report):
        lines = run_pass(generator, prompts, features, load_sae, settings, out, batch_size=args.batch_size,
                         restart=args.restart, progress=report)
    meta = {**settings.model_dump(exclude={"prompts"}), "alpha": args.alpha, "min_effect": args.min_effect,
            "features_table": str(table_path), "sae_spec": args.sae, "warnings": warnings,
            "wall_s": round(time.perf_counter() - t0, 2)}
    (out / "patch_meta.json").write_text(
        settings.model_copy(update={"warnings": warnings}).model_dump_json(indent=2)
    )
    table = _write_patch_results(args, lines, features, meta, out)
    counts = table["classification"].value_counts().to_dict() if len(table) else {}
    print(f"{len(table)} features patched: {counts.get('safe', 0)} safe, {counts.get('risky', 0)} risky, "
          f"{counts.get('breaks_format', 0)} breaks_format, {counts.get('none', 0)} none; "
          f"wrote {out / 'patch_features.parquet'} and {out / 'report.md'}")
    return 0


def run_words(args) -> int:
    import numpy as np

    from sae.games import decision_rounds, group_of, read_games, split_groups
    from sae.patching.generate import Generator
    from sae.progress import PassProgress, finishing
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import load_folders, model_warnings, resolve_spec
    from sae.words import feature_words, write_words

    run_dir, table_path = resolve_inputs(args)
    if run_dir is None:
        raise ConfigError(f"{args.target}: `words` needs the run directory (its games)")
    chosen = _selected(args, table_path)
    layers = sorted(int(x) for x in chosen["layer"].unique())
    folders = resolve_spec(args.sae, layers)
    all_games = read_games(run_dir)
    games = [g for g in all_games if decision_rounds(g)]
    if not games:
        raise ConfigError(f"{run_dir}: no game with a saved decision prompt")
    model_cfg = run_model_config(run_dir, args.model, args.style)
    # one CausalLM: LM head + blocks
    generator = Generator.load(model_cfg, device=args.device, dtype=args.dtype)
    lm = cast("PreTrainedModel", generator.model)  # a transformers causal LM: its config names the checkpoint
    reader = ResidualReader.from_model(
        getattr(lm, "model", lm), generator.formatter, batch_size=args.batch_size
    )
    saes = load_folders(folders, device=generator.device, dtype=args.sae_dtype, d_model=reader.d_model)
    warnings = model_warnings(saes, [model_cfg.name, model_cfg.path, lm.config._name_or_path])
    prompts = [decision_rounds(g)[-1].prompt for g in games]
    acts = {L: np.zeros((len(games), saes[L].d_sae), dtype=np.float32) for L in layers}
    report = PassProgress(run_dir, "words", model_cfg.name, events=not args.no_events, file=args.events)
    with finishing(report):
        done = 0
        for idx, residuals in reader.last_token(prompts, layers):
            for L in layers:
                acts[L][idx] = saes[L].encode(residuals[L]).float().cpu().numpy()
            done += len(idx)
            report(done, len(prompts))
    texts = [decision_rounds(g)[-1].response or "" for g in games]
    groups = [group_of(g) or "other" for g in games]  # the delta compares bankrupt vs voluntary stops
    tok = generator.formatter.tokenizer
    table = feature_words(lm, lambda i: tok.decode([i]), saes, chosen, acts, texts, groups,
                          k_tokens=args.k_tokens, k_words=args.k_words)
    meta = {"games": len(games), "n_bankrupt": groups.count("bankrupt"), "n_stopped": groups.count("stopped"),
            "games_dropped": split_groups(all_games)[1], "warnings": warnings}
    out = args.out or run_dir / "sae" / "words"
    paths = write_words(table, meta, out)
    print(f"{len(table)} features; wrote {paths['table']} and {paths['report']}", file=sys.stdout)
    return 0
