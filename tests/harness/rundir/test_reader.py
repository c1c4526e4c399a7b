"""The one reader of games.jsonl: torn tail, fragments, duplicates and bad lines under one policy."""

import pytest

from harness.records import SchemaVersionError
from harness.rundir.reader import RunFiles, read_game_lines
from tests.helpers import make_game


def test_skips_torn_tail_and_bad_lines_and_keeps_first_copy(tmp_path):
    g1, g2 = make_game([(10, False)], repetition=0), make_game([(10, True)], repetition=1)
    p = tmp_path / "games.jsonl"
    p.write_text(
        g1.model_dump_json() + "\n"
        + g1.model_dump_json().replace('"final_balance":90', '"final_balance":1') + "\nnot json\n"
        + g2.model_dump_json()[:50]
    )
    read = read_game_lines(p)
    assert [g.game_id for g in read.games] == [g1.game_id] and read.games[0].final_balance == 90
    assert read.duplicates == 1 and read.torn_tail and len(read.unreadable) == 1
    assert read.unreadable[0].startswith("line 3:")
    assert "1 duplicate" in (read.note() or "") and "torn" in (read.note() or "")


def test_recovers_a_record_glued_to_a_fragment(tmp_path):
    g1, g2 = make_game([(10, False)], repetition=0), make_game([(10, True)], repetition=1)
    p = tmp_path / "games.jsonl"
    p.write_text(g1.model_dump_json()[:40] + g2.model_dump_json() + "\n")
    read = read_game_lines(p)
    assert [g.game_id for g in read.games] == [g2.game_id]
    assert read.recovered == 1 and not read.unreadable
    assert read.lines[0].data == g2.model_dump_json().encode() + b"\n"


def test_a_complete_last_record_without_newline_is_a_torn_tail(tmp_path):
    g1, g2 = make_game([(10, False)], repetition=0), make_game([(10, True)], repetition=1)
    p = tmp_path / "games.jsonl"
    p.write_text(g1.model_dump_json() + "\n" + g2.model_dump_json())
    read = read_game_lines(p)
    assert [g.game_id for g in read.games] == [g1.game_id] and read.torn_tail


def test_newer_major_version_names_file_and_line(tmp_path):
    g1 = make_game([(10, False)])
    p = tmp_path / "games.jsonl"
    newer = g1.model_dump_json().replace('"schema_version":"2.0"', '"schema_version":"9.0"')
    p.write_text("\n" + newer + "\n")
    with pytest.raises(SchemaVersionError, match=r"games.jsonl: line 2"):
        read_game_lines(p)


def test_missing_file_reads_empty(tmp_path):
    files = RunFiles(tmp_path)
    assert files.games().games == [] and files.done_ids() == set() and files.games().note() is None
