"""`harness sae words`: feature words, the tokens a feature promotes and the answer words where it
is high. Torch loads only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from harness.errors import ConfigError
from harness.rundir.files import PATCH_FEATURES, sae_pass_dir
from sae.commands.options import (
    add_events_flags,
    add_selection_args,
    check_selection,
    progress,
    resolve_inputs,
    run_games,
    selected,
    warn,
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
        "--causal", type=Path, help=f"Only features classified safe/risky in this {PATCH_FEATURES}."
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
    from sae.games import decision_rounds
    from sae.patching.generate import Generator
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import check_folders, load_folders, model_warnings, resolve_spec
    from sae.words import extract_words, write_words

    run_dir, table_path = resolve_inputs(args)
    if run_dir is None:
        raise ConfigError(f"{args.target}: `words` needs the run directory (its games)")
    chosen = selected(args, table_path)
    folders = resolve_spec(args.sae, sorted(int(x) for x in chosen["layer"].unique()))
    check_folders(folders)
    games = run_games(run_dir)
    if not any(decision_rounds(g) for g in games):
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
    warn(warnings)
    tok = generator.formatter.tokenizer
    with progress(args, "words", model_cfg.name, run_dir) as report:
        table, meta = extract_words(games, lm, reader, saes, chosen, lambda i: tok.decode([i]),
                                    k_tokens=args.k_tokens, k_words=args.k_words, progress=report)
    out = args.out or sae_pass_dir(run_dir, "words")
    from sae.releases import neuronpedia_ids, with_neuronpedia

    table = with_neuronpedia(table, neuronpedia_ids(saes))
    paths = write_words(table, meta | {"warnings": warnings}, out)
    print(f"{len(table)} features; wrote {paths['table']} and {paths['report']}")
    return 0
