"""`--sae SPEC` and `--layers`: which SAE folder serves which layer.

A SPEC is one string, tried in this order:

0. `saelens:RELEASE[/SAE_ID]`: a release of the installed SAELens registry, read from the local
   Hugging Face cache (sae/releases.py);
1. a template with `{layer}`: `saes/Llama3_1-8B-Base-L{layer}R-8x` -> one folder per layer;
2. a folder holding `layer_{L}` subfolders (`layer_{L}` itself, or the single SAE folder below it,
   e.g. Gemma Scope's `layer_20/width_16k/average_l0_71` when there is only one);
3. a single SAE folder, allowed only when exactly one layer is asked for.

Layers are block indices: layer L reads the output of block L (`hidden_states[L + 1]`).
`--layers` takes `25-31`, `1,5,9` or a mix (`1-3,30`).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from sae.loading import LAYOUTS, SAELoadError, check_folder, load
from sae.model import SAE
from sae.releases import ResolvedSAE, is_release_spec, resolve_release

MAX_LAYERS = 1000
"""More blocks than any model has: a layer beyond it is a typo, refused before a range is built."""


def parse_layers(text: str) -> list[int]:
    """`1-3,30` -> [1, 2, 3, 30] (sorted, unique). ConfigError on anything else."""
    layers: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            lo, hi = (int(x) for x in part.split("-", 1)) if "-" in part[1:] else (int(part), int(part))
            if hi < lo:
                raise ValueError
            if lo < 0:
                raise ConfigError(f"--layers: {text!r}: layers are block indices >= 0")
            if hi >= MAX_LAYERS:
                raise ConfigError(f"--layers: {text!r}: layer {hi} is beyond any model (< {MAX_LAYERS})")
            layers.update(range(lo, hi + 1))
    except ValueError:
        raise ConfigError(f"--layers: {text!r} is not a list of layers like '25-31' or '1,5,9'") from None
    if not layers:
        raise ConfigError(f"--layers: {text!r}: layers are block indices >= 0")
    return sorted(layers)


def check_folders(folders: dict[int, Path]) -> None:
    """Each layer's SAE folder and its config, read before any model or weights (`loading.check_folder`)."""
    for folder in folders.values():
        check_folder(folder)


def _is_sae_folder(p: Path) -> bool:
    return p.is_dir() and any(layout.detect(p) for layout in LAYOUTS.values())


def _single_sae_below(p: Path, depth: int = 3) -> Path:
    if _is_sae_folder(p):
        return p
    found = [d for k in range(1, depth + 1) for d in sorted(p.glob("/".join(["*"] * k))) if _is_sae_folder(d)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise SAELoadError(f"{p}: no SAE folder in it")
    names = ", ".join(str(d.relative_to(p)) for d in found[:5])
    raise SAELoadError(
        f"{p}: {len(found)} SAE folders below it ({names}...); name one with a {{layer}} template"
    )


#: Folders resolved from a `saelens:` spec, with their release and Neuronpedia id (for the SAE's config).
RELEASED: dict[Path, ResolvedSAE] = {}


def resolve_spec(spec: str, layers: list[int]) -> dict[int, Path]:
    """Layer -> SAE folder for every requested layer (checked to exist and to be an SAE folder)."""
    if is_release_spec(spec):
        resolved = resolve_release(spec, layers, _is_sae_folder)
        RELEASED.update({r.path: r for r in resolved.values()})
        return {layer: r.path for layer, r in resolved.items()}
    if "{layer}" in spec:
        out = {L: Path(spec.format(layer=L)) for L in layers}
        for L, p in out.items():
            if not _is_sae_folder(p):
                raise SAELoadError(f"{p}: no SAE folder for layer {L} (from --sae {spec})")
        return out
    root = Path(spec)
    if not root.is_dir():
        raise SAELoadError(f"{root}: --sae is neither a folder nor a template with {{layer}}")
    if any((root / f"layer_{L}").is_dir() for L in layers):
        out = {}
        for L in layers:
            sub = root / f"layer_{L}"
            if not sub.is_dir():
                raise SAELoadError(f"{sub}: no SAE folder for layer {L}")
            out[L] = _single_sae_below(sub)
        return out
    if _is_sae_folder(root):
        if len(layers) != 1:
            raise ConfigError(
                f"--sae {spec} is one SAE but --layers names {len(layers)}; use a {{layer}} template"
            )
        return {layers[0]: root}
    raise SAELoadError(
        f"{root}: not an SAE folder, and it holds no layer_{{L}} subfolders for layers {layers}"
    )


def folder_neuronpedia_ids(folders: dict[int, Path]) -> dict[int, str | None]:
    """Layer -> Neuronpedia id of each folder resolved from a `saelens:` spec (None otherwise)."""
    return {L: RELEASED[f].neuronpedia_id if f in RELEASED else None for L, f in folders.items()}


def load_folders(
    folders: dict[int, Path], *, device: str = "cpu", dtype: str | None = "float32",
    d_model: int | None = None,
) -> dict[int, SAE]:
    """Load the SAE of every layer, one after another (never two copies of one in memory)."""
    out = {}
    for L, folder in folders.items():
        sae = load(folder, device=device, dtype=dtype, d_model=d_model, layer=L)
        if folder in RELEASED:
            r = RELEASED[folder]
            sae.cfg = sae.cfg.model_copy(update={"release": f"{r.release}/{r.sae_id}",
                                                 "neuronpedia_id": r.neuronpedia_id})
        out[L] = sae
    return out


def load_layers(
    spec: str, layers: list[int], *, device: str = "cpu", dtype: str | None = "float32",
    d_model: int | None = None,
) -> dict[int, SAE]:
    """`resolve_spec` then `load_folders`."""
    return load_folders(resolve_spec(spec, layers), device=device, dtype=dtype, d_model=d_model)


def _model_key(name: str) -> str:
    return name.strip().rstrip("/").rsplit("/", 1)[-1].lower()


def model_warnings(saes: dict[int, SAE], model_names: list[str | None]) -> list[str]:
    """One line per model an SAE's config names (SAELens `model_name`, LlamaScope `model_name`)
    that is none of `model_names` (the run's label, path, the loaded model's name_or_path; compared
    by their last path component, case-insensitive), for the meta file and for the command to print."""
    ours = {_model_key(n) for n in model_names if n}
    foreign: dict[str, list[int]] = {}
    for layer, sae in sorted(saes.items()):
        if sae.cfg.model_name and _model_key(sae.cfg.model_name) not in ours:
            foreign.setdefault(sae.cfg.model_name, []).append(layer)
    shown = ", ".join(repr(n) for n in model_names if n)
    lines = [
        f"warning: the SAE(s) of layer(s) {', '.join(map(str, layers))} name model {name!r}, "
        f"not this run's model ({shown})"
        for name, layers in foreign.items()
    ]
    return lines


def reader_model_names(reader) -> list[str | None]:
    """The names a loaded model goes by: its label and the path or hub id it was loaded from."""
    config = getattr(getattr(reader, "model", None), "config", None)
    return [getattr(reader, "model_name", None), getattr(config, "_name_or_path", None)]
