"""The table of experiment kinds: each row complete and consistent with the names it joins."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from harness.rundir.files import OLD_PASS_NAMES, SAE_PASSES
from harness.status import headline
from harness.study.kinds import (
    KINDS,
    ExperimentKind,
    Resolved,
    kind_of_pass,
    kind_of_sae_folder,
    pass_kind_of,
)


def test_the_study_file_accepts_exactly_the_kinds_of_the_table():
    assert get_args(ExperimentKind) == tuple(KINDS)


def test_every_sae_pass_has_one_name_for_command_folder_events_and_kind():
    sae = [k for k in KINDS.values() if k.sae_pass is not None]
    assert tuple(k.sae_pass for k in sae) == SAE_PASSES
    for k in sae:
        assert k.name == f"sae-{k.sae_pass}" and k.pass_kind == k.sae_pass
        argv = k.argv(Resolved(out=Path("/s/x"), devices=["cpu"], run=Path("/s/games")))
        assert argv[:3] == ["sae", k.sae_pass, "/s/games"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_has_a_headline_reader(kind):
    assert callable(getattr(headline, KINDS[kind].headline))


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_input_passed_as_a_file_names_kinds_that_write_one(kind):
    row = KINDS[kind]
    assert set(row.required) <= set(row.inputs) | {"config"}
    for name in row.file_inputs:
        assert all(KINDS[source].output for source in row.inputs[name]), name


def test_old_pass_names_are_read_as_the_new_ones():
    for old, new in OLD_PASS_NAMES.items():
        assert kind_of_pass(old) is kind_of_pass(new) is KINDS[f"sae-{new}"]
        assert kind_of_sae_folder(old) is kind_of_sae_folder(new) is KINDS[f"sae-{new}"]
    assert kind_of_pass("games") is KINDS["games"] and kind_of_sae_folder("games") is None
    assert pass_kind_of("analyze") is None and pass_kind_of("sae-patch") == "patch"
    assert pass_kind_of("no-such-kind") is None
