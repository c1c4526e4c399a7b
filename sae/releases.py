"""`--sae saelens:RELEASE[/SAE_ID]`: an SAE named by the installed SAELens registry, read from the
local Hugging Face cache, never downloaded.

The registry (`sae_lens`'s pretrained SAEs directory) maps a release (`gemma-scope-2b-pt-res-canonical`,
`llama_scope_lxr_8x`, ...) to its Hugging Face repository, each SAE id to its folder there, and
each SAE id to its Neuronpedia id. Without SAE_ID the release's SAE of each asked layer is used (the
layer read from the SAE id: `layer_20/...`, `l20r_8x`, `blocks.20.hook_...`); an SAE_ID may hold
`{layer}` (`saelens:gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical`). A file
that is not in the cache is one line saying which repository and folder to fetch.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

PREFIX = "saelens:"
NEURONPEDIA = "https://www.neuronpedia.org"
_LAYER_PATTERNS = (re.compile(r"layer_(\d+)"), re.compile(r"blocks\.(\d+)\."), re.compile(r"^l(\d+)[a-z]"))


class ReleaseError(ConfigError):
    """A saelens: spec that names nothing the registry knows, or files not in the local cache."""


@dataclass(frozen=True)
class ResolvedSAE:
    layer: int
    release: str
    sae_id: str
    repo_id: str
    folder_in_repo: str
    path: Path
    neuronpedia_id: str | None


def is_release_spec(spec: str) -> bool:
    return spec.startswith(PREFIX)


def layer_of(sae_id: str) -> int | None:
    """The block index an SAE id names, if it names one."""
    for pattern in _LAYER_PATTERNS:
        m = pattern.search(sae_id)
        if m:
            return int(m.group(1))
    return None


def registry() -> dict:
    """The installed SAELens registry: release name -> its entry."""
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError:
        raise ReleaseError("--sae saelens:...: needs sae-lens (pip install sae-lens)") from None
    return dict(get_pretrained_saes_directory())


def hub_cache() -> Path:
    """The Hugging Face hub cache as huggingface_hub finds it (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    home = os.environ.get("HF_HOME") or os.path.join(cache, "huggingface")
    return Path(home).expanduser() / "hub"


def snapshot_dir(repo_id: str) -> Path | None:
    """The cached snapshot of `repo_id` that refs/main points to (else the only one), or None."""
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snaps = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
    return snaps[0] if len(snaps) == 1 else None


def neuronpedia_url(neuronpedia_id: str | None, feature: int) -> str:
    """The feature's Neuronpedia page ('' when the release has no Neuronpedia id)."""
    return f"{NEURONPEDIA}/{neuronpedia_id}/{feature}" if neuronpedia_id else ""


def resolve_release(spec: str, layers: list[int], is_sae_folder) -> dict[int, ResolvedSAE]:
    """Layer -> the cached SAE folder of `saelens:RELEASE[/SAE_ID]` for each of `layers`."""
    body = spec[len(PREFIX):]
    release, _, sae_id = body.partition("/")
    entries = registry()
    if release not in entries:
        close = difflib.get_close_matches(release, list(entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(entries)} releases known)"
        raise ReleaseError(f"--sae {spec}: SAELens knows no release {release!r}{hint}")
    entry = entries[release]
    chosen: dict[int, str] = {}
    for layer in layers:
        if sae_id:
            candidates = [sae_id.format(layer=layer)] if "{layer}" in sae_id else [sae_id]
        else:
            candidates = [s for s in entry.saes_map if layer_of(s) == layer]
        if not candidates or candidates[0] not in entry.saes_map:
            what = candidates[0] if candidates else f"an SAE for layer {layer}"
            raise ReleaseError(f"--sae {spec}: release {release} has no {what}")
        if len(candidates) > 1:
            shown = ", ".join(candidates[:4])
            raise ReleaseError(
                f"--sae {spec}: release {release} has {len(candidates)} SAEs for layer {layer} ({shown}...); "
                f"name one: saelens:{release}/SAE_ID (SAE_ID may hold {{layer}})")
        chosen[layer] = candidates[0]
    if sae_id and "{layer}" not in sae_id and len(layers) > 1:
        raise ReleaseError(
            f"--sae {spec} is one SAE but --layers names {len(layers)}; put {{layer}} in the SAE id")
    snap = snapshot_dir(entry.repo_id)
    out = {}
    for layer, sid in chosen.items():
        folder = entry.saes_map[sid]
        path = snap / folder if snap is not None else None
        if path is None or not is_sae_folder(path):
            raise ReleaseError(
                f"--sae {spec}: layer {layer}'s SAE is not in the local Hugging Face cache ({hub_cache()}): "
                f"fetch {entry.repo_id} folder {folder} (huggingface-cli download {entry.repo_id} "
                f"--include '{folder}/*'); the harness never downloads"
            )
        out[layer] = ResolvedSAE(layer, release, sid, entry.repo_id, folder, path,
                                 (entry.neuronpedia_id or {}).get(sid))
    return out


def neuronpedia_ids(saes: dict) -> dict[int, str | None]:
    """Layer -> Neuronpedia id of each loaded SAE (None where its release has none)."""
    return {int(layer): getattr(sae.cfg, "neuronpedia_id", None) for layer, sae in saes.items()}


def with_neuronpedia(frame, ids: dict[int, str | None]):
    """`frame` (a table with `layer` and `feature` columns) with a `neuronpedia` column: each
    feature's Neuronpedia page where its layer's SAE came from a release Neuronpedia knows, else ''."""
    if "layer" not in frame or "feature" not in frame:
        return frame
    frame = frame.copy()
    frame["neuronpedia"] = [neuronpedia_url(ids.get(int(layer)), int(feature))
                            for layer, feature in zip(frame["layer"], frame["feature"], strict=True)]
    return frame
