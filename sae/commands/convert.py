"""`harness sae convert`: Gemma Scope params.npz as params.safetensors, once, for fast loads."""

from __future__ import annotations

from sae.commands.options import SAE_SPEC_HELP, check_layers

#: The checks of the flags alone, before anything is read.
validate = check_layers


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="Write Gemma Scope params.npz as params.safetensors (once) for fast loads."
    )
    p.add_argument("--sae", required=True, metavar="SPEC", help=SAE_SPEC_HELP)
    p.add_argument("--layers", required=True, help="Block indices, e.g. '25-31' or '1,5,9'.")
    p.set_defaults(func=run, validate=validate)


def run(args) -> int:
    from sae.loading import convert_npz
    from sae.spec import parse_layers, resolve_spec

    for layer, folder in resolve_spec(args.sae, parse_layers(args.layers)).items():
        if (folder / "params.npz").is_file():
            print(f"layer {layer}: {convert_npz(folder)}")
    return 0
