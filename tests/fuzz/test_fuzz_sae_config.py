"""Generated SAELens cfg.json files through the loader's cheap check and through `harness sae
features` (no run directory: it can only end in one line): never a traceback, and a config the
check accepts has the settings the loader needs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sae.loading import SAELoadError, check_folder
from sae.saelens_config import read_settings
from tests.fuzz.strategies import assert_clean, damaged_json, run_cli, snapshot, values

BASE = {"d_in": 4, "d_sae": 8, "architecture": "topk", "k": 2, "hook_name": "blocks.5.hook_resid_post",
        "apply_b_dec_to_input": True, "model_name": "smollm2", "sae_lens_version": "6.5.0",
        "metadata": {"hook_name": "blocks.5.hook_resid_post"}}
KEYS = ["d_in", "d_sae", "architecture", "k", "hook_name", "activation_fn", "activation_fn_kwargs",
        "normalize_activations", "reshape_activations", "hook_head_index", "metadata", "model_name",
        "sae_lens_version", "finetuning_scaling_factor", "rescale_acts_by_decoder_norm", "hook_point"]
cfgs = st.one_of(
    damaged_json(BASE),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(lambda d: {**BASE, **d}),
    values,
)


def _folder(tmp: Path, raw: bytes) -> Path:
    folder = tmp / "sae"
    folder.mkdir()
    (folder / "cfg.json").write_bytes(raw)
    (folder / "sae_weights.safetensors").write_bytes(b"")
    return folder


@given(cfgs)
def test_generated_cfg_json_checked_or_one_line(cfg):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), json.dumps(cfg).encode())
        try:
            check_folder(folder)
        except SAELoadError as e:
            assert "\n" not in str(e)
            return
        s = read_settings(cfg, folder / "cfg.json")
        assert s.d_in > 0 and s.d_sae > 0
        assert s.architecture != "topk" or (s.k or 0) > 0
        assert s.hook_name is None or isinstance(s.hook_name, str)


@given(st.one_of(cfgs.map(lambda c: json.dumps(c).encode()), st.binary(max_size=120)))
def test_generated_cfg_json_through_the_command(raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp), raw)
        before = snapshot(Path(tmp))
        argv = ["sae", "features", str(Path(tmp) / "run"), "--sae", str(folder), "--layers", "5"]
        code, err = run_cli(argv)
        assert_clean(code, err, before, allowed_codes=())
