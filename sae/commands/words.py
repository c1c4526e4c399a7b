"""`harness sae words`: feature words, the tokens a feature promotes and the answer words where it
is high. Torch loads only when the command runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from harness.errors import ConfigError
from sae.commands.options import (
    add_events_flags,
    add_selection_args,
    check_selection,
    resolve_inputs,
    selected,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel


#: The checks of the flags alone, before anything is read.
validate = check_selection


def register(sub) -> None:
    p = sub.add_parser(
        "words", help="Feature words: tokens a feature promotes, answer words where it is high."
    )
    add_selection_args(p)
    p.add_argument(
        "--causal", type=Path, help="Only features classified safe/risky in this patch_features.parquet."
    )
    p.add_argument(
        "--k-tokens", type=int, default=10, help="Promoted / suppressed tokens per feature (default 10)."
    )
    p.add_argument(
        "--k-words", type=int, default=10, help="High / low answer words per feature (default 10)."
    )
    p.add_argument("--batch-size", type=int, default=16, help="Prompts per forward pass (default 16).")
    add_events_flags(p)
    p.set_defaults(func=run, validate=validate)


def run(args) -> int:
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
    chosen = selected(args, table_path)
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
