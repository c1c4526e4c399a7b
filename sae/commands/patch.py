"""`harness sae patch`: activation patching, each feature clamped while generating (batched,
resumable). Torch loads only when the command runs."""

from __future__ import annotations

import time

from harness.rundir.files import PASS_REPORT, PATCH_FEATURES, sae_pass_dir
from sae.commands.options import (
    add_events_flags,
    add_selection_args,
    check_selection,
    manifest_config,
    progress,
    resolve_inputs,
    selected,
    warn,
)

#: The checks of the flags alone, before anything is read.
validate = check_selection


def register(sub) -> None:
    p = sub.add_parser(
        "patch", help="Activation patching: clamp each feature while generating (batched, resumable)."
    )
    add_selection_args(p)
    p.add_argument("--trials", type=int, default=50, help="Trials per condition (default 50).")
    p.add_argument("--temperature", type=float, default=0.7,
                   help="Sampling temperature of the patched games' answers (default 0.7, the study's).")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="Nucleus sampling of those answers (default 1.0).")
    p.add_argument(
        "--max-new-tokens", type=int, help="Default: the run's generation.max_new_tokens (else 256)."
    )
    p.add_argument(
        "--decision", choices=("free", "constrained"),
        help="How answers are generated and read (default: the run's game.decision, else free).",
    )
    p.add_argument("--seed", type=int, help="Trial seeds derive from it (default: the run's seed).")
    p.add_argument("--batch-size", type=int, default=200, help="Trials per generate call (default 200).")
    p.add_argument("--alpha", type=float, default=0.05, help="BH-FDR level over all tests (default 0.05).")
    p.add_argument("--min-effect", type=float, default=0.1, help="Minimum |rate change| (default 0.1).")
    for name in ("safe", "risky"):
        p.add_argument(f"--{name}-condition", help=f"Condition id of the {name} prompt.")
        p.add_argument(f"--{name}-history", help=f"Rounds before the {name} prompt, e.g. '10L,20W'.")
    p.add_argument("--restart", action="store_true", help="Discard earlier results in the output folder.")
    add_events_flags(p)
    p.set_defaults(func=run, validate=validate)


def _load_generator(args, model_cfg, gen_cfg: dict):
    from sae.patching.generate import Generator

    return Generator.load(
        model_cfg, device=args.device, dtype=args.dtype,
        max_new_tokens=args.max_new_tokens or gen_cfg.get("max_new_tokens", 256),
        temperature=args.temperature, top_p=args.top_p, stop=gen_cfg.get("stop", []),
    )


def _prompts_and_settings(args, config: dict, model_cfg, generator):
    """The two test prompts (the run's rules, the flags' conditions) and the pass's settings."""
    from harness.game.prompts import DECISION_MAX_TOKENS
    from harness.game.rules import GameRules
    from sae.patching.prompts import build_test_prompts
    from sae.patching.trials import PatchSettings

    game = config.get("game") or {}
    rules = GameRules.model_validate({k: v for k, v in game.items() if k in GameRules.model_fields})
    prompts = build_test_prompts(
        generator.formatter, model_cfg.style, rules,  # the rules without `decision`, given apart
        decision=args.decision or game.get("decision", "free"),
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
    return prompts, settings


def _sae_loader(args, folders: dict, generator, model_cfg, warnings: list[str]):
    """load_sae(layer) for the pass: one layer's SAE, its model checked against the run's (a
    foreign model is warned about once, when its first layer loads)."""
    from sae.spec import load_folders, model_warnings

    d_model = int(generator.model.config.hidden_size)
    names = [model_cfg.name, model_cfg.path, getattr(generator.model.config, "_name_or_path", None)]

    def load_sae(layer: int):
        sae = load_folders(
            {layer: folders[layer]}, device=generator.device, dtype=args.sae_dtype, d_model=d_model
        )[layer]
        if sae.cfg.model_name and not any(sae.cfg.model_name in w for w in warnings):
            new = model_warnings({layer: sae}, names)
            warn(new)
            warnings.extend(new)
        return sae

    return load_sae


def run(args) -> int:
    from sae.patching.stats import patch_targets, write_results
    from sae.patching.trials import run_pass
    from sae.reader import run_model_config
    from sae.spec import check_folders, resolve_spec

    run_dir, table_path = resolve_inputs(args)
    chosen = selected(args, table_path)
    # the SAE folders are resolved before the model loads
    folders = resolve_spec(args.sae, sorted(int(x) for x in chosen["layer"].unique()))
    check_folders(folders)
    config = manifest_config(run_dir)
    model_cfg = run_model_config(run_dir or table_path.parent, args.model, args.style)
    generator = _load_generator(args, model_cfg, config.get("generation") or {})
    prompts, settings = _prompts_and_settings(args, config, model_cfg, generator)
    features = patch_targets(chosen)
    out = args.out or (sae_pass_dir(run_dir, "patch") if run_dir else table_path.parent / "patch")
    warnings: list[str] = []
    load_sae = _sae_loader(args, folders, generator, model_cfg, warnings)
    t0 = time.perf_counter()
    with progress(args, "patch", model_cfg.name, run_dir) as report:
        lines = run_pass(generator, prompts, features, load_sae, settings, out, batch_size=args.batch_size,
                         restart=args.restart, progress=report)
    meta = {**settings.model_dump(exclude={"prompts"}), "alpha": args.alpha, "min_effect": args.min_effect,
            "features_table": str(table_path), "sae_spec": args.sae, "warnings": warnings,
            "wall_s": round(time.perf_counter() - t0, 2)}
    from sae.spec import folder_neuronpedia_ids

    table = write_results(lines, features, settings.model_copy(update={"warnings": warnings}), meta, out,
                          alpha=args.alpha, min_effect=args.min_effect,
                          neuronpedia=folder_neuronpedia_ids(folders))
    counts = table["classification"].value_counts().to_dict() if len(table) else {}
    print(f"{len(table)} features patched: {counts.get('safe', 0)} safe, {counts.get('risky', 0)} risky, "
          f"{counts.get('breaks_format', 0)} breaks_format, {counts.get('none', 0)} none; "
          f"wrote {out / PATCH_FEATURES} and {out / PASS_REPORT}")
    return 0
