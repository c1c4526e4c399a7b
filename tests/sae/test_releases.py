"""`--sae saelens:RELEASE[/SAE_ID]` against a fake local Hugging Face cache laid out as the real one
(models--ORG--NAME/refs/main, snapshots/REV/FOLDER): resolved through the installed SAELens
registry, loaded, never downloaded; a missing file or an unknown release is one line."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.cli import main
from sae.releases import ReleaseError, layer_of, neuronpedia_url, resolve_release, with_neuronpedia
from sae.spec import RELEASED, _is_sae_folder, folder_neuronpedia_ids, load_layers, resolve_spec
from tests.sae.builders import random_weights, write_gemmascope, write_llamascope

pytest.importorskip("sae_lens")

REV = "0123456789abcdef0123456789abcdef01234567"


def _cache(tmp_path, monkeypatch, repo_id: str):
    cache = tmp_path / "hub"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REV)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo / "snapshots" / REV


def test_llamascope_layers_resolve_load_and_link_to_neuronpedia(tmp_path, monkeypatch):
    snap = _cache(tmp_path, monkeypatch, "fnlp/Llama3_1-8B-Base-LXR-8x")
    for layer in (3, 4):
        weights = random_weights(16, 64, seed=layer, threshold=0.1)
        write_llamascope(snap / f"Llama3_1-8B-Base-L{layer}R-8x", weights, layer=layer)
    folders = resolve_spec("saelens:llama_scope_lxr_8x", [3, 4])
    assert folders == {L: snap / f"Llama3_1-8B-Base-L{L}R-8x" for L in (3, 4)}
    assert folder_neuronpedia_ids(folders) == {3: "llama3.1-8b/3-llamascope-res-32k",
                                               4: "llama3.1-8b/4-llamascope-res-32k"}
    saes = load_layers("saelens:llama_scope_lxr_8x", [3, 4])
    assert saes[3].cfg.neuronpedia_id == "llama3.1-8b/3-llamascope-res-32k"
    assert saes[3].cfg.release == "llama_scope_lxr_8x/l3r_8x" and saes[3].cfg.d_sae == 64
    table = with_neuronpedia(pd.DataFrame({"layer": [3, 4], "feature": [7, 9]}), {3: "x/3", 4: None})
    assert list(table["neuronpedia"]) == ["https://www.neuronpedia.org/x/3/7", ""]
    RELEASED.clear()


def test_an_sae_id_with_a_layer_template_picks_one_of_several(tmp_path, monkeypatch):
    snap = _cache(tmp_path, monkeypatch, "google/gemma-scope-2b-pt-res")
    write_gemmascope(snap / "layer_20" / "width_16k" / "average_l0_71", random_weights(16, 32, threshold=0.2))
    spec = "saelens:gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical"
    [resolved] = resolve_release(spec, [20], _is_sae_folder).values()
    assert resolved.path == snap / "layer_20" / "width_16k" / "average_l0_71"
    assert resolved.neuronpedia_id == "gemma-2-2b/20-gemmascope-res-16k"
    with pytest.raises(ReleaseError, match=r"SAEs for layer 20 .*name one: saelens:gemma-scope-2b-pt-res"):
        resolve_release("saelens:gemma-scope-2b-pt-res-canonical", [20], _is_sae_folder)


def test_a_file_missing_from_the_cache_is_one_line_naming_what_to_fetch(tmp_path, monkeypatch):
    _cache(tmp_path, monkeypatch, "fnlp/Llama3_1-8B-Base-LXR-8x")
    with pytest.raises(ReleaseError) as err:
        resolve_spec("saelens:llama_scope_lxr_8x", [25])
    line = str(err.value)
    assert "\n" not in line and "fnlp/Llama3_1-8B-Base-LXR-8x" in line and "Llama3_1-8B-Base-L25R-8x" in line
    assert "huggingface-cli download" in line


def test_an_unknown_release_names_close_ones(tmp_path, monkeypatch, capsys):
    _cache(tmp_path, monkeypatch, "x/y")
    with pytest.raises(ReleaseError, match="did you mean .*gemma-scope-2b-pt-res-canonical"):
        resolve_spec("saelens:gemma-scope-2b-pt-res-canonicl", [1])
    assert main(["sae", "convert", "--sae", "saelens:no-such-release-at-all", "--layers", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_layers_and_pages():
    assert layer_of("layer_20/width_16k/canonical") == 20 and layer_of("l7r_8x") == 7
    assert layer_of("blocks.8.hook_resid_pre") == 8 and layer_of("something") is None
    assert neuronpedia_url("gemma-2-2b/20-gemmascope-res-16k", 5) == (
        "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/5")
    assert neuronpedia_url(None, 5) == ""
