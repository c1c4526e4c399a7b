"""The byte-offset tailer: complete lines only, torn lines, missing, resumed, truncated, replaced files."""

from __future__ import annotations

import os

from tests.tui.builders import append, error, progress, start
from tui.follow import JsonlTail, RunFollower, events_path, parse_lines


def test_reads_only_new_lines_by_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, start(0), progress(5, 1))
    tail = JsonlTail(path)
    first = tail.read()
    assert len(first.lines) == 2 and first.exists and not first.reset
    assert tail.offset == path.stat().st_size
    assert tail.read().lines == []
    append(path, progress(10, 2))
    (line,) = tail.read().lines
    assert b'"games_done":2' in line


def test_torn_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "events.jsonl"
    whole = progress(5, 3).model_dump_json()
    append(path, start(0), raw=whole[:25])
    tail = JsonlTail(path)
    assert len(tail.read().lines) == 1
    offset = tail.offset
    assert tail.read().lines == [] and tail.offset == offset  # still torn: nothing consumed
    with open(path, "a") as f:
        f.write(whole[25:] + "\n")
    (line,) = tail.read().lines
    events, bad, _ = parse_lines([line])
    assert bad == 0 and events[0].games_done == 3


def test_missing_file_then_created(tmp_path):
    path = tmp_path / "run" / "events.jsonl"
    tail = JsonlTail(path)
    assert tail.read().exists is False
    append(path, start(0))
    got = tail.read()
    assert got.exists and len(got.lines) == 1


def test_resumed_run_appends_and_is_read_on(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, start(0, total=4), progress(5, 2, total=4))
    tail = JsonlTail(path)
    tail.read()
    append(path, start(100, total=4, already=2), progress(105, 3, total=4))
    got = tail.read()
    assert not got.reset
    events, _, _ = parse_lines(got.lines)
    assert [e.type for e in events] == ["run_start", "progress"] and events[0].resumed


def test_truncated_file_restarts_from_zero(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, start(0), progress(5, 1), progress(10, 2))
    tail = JsonlTail(path)
    tail.read()
    path.write_text(start(50).model_dump_json() + "\n")  # shorter than the offset
    got = tail.read()
    assert got.reset and len(got.lines) == 1


def test_replaced_file_restarts_from_zero(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, start(0))
    tail = JsonlTail(path)
    tail.read()
    other = tmp_path / "new.jsonl"
    append(other, start(50), progress(55, 1), progress(60, 2))  # longer, another inode
    os.replace(other, path)
    got = tail.read()
    assert got.reset and len(got.lines) == 3


def test_file_rewritten_in_place_to_the_same_size_restarts_from_zero(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(start(0, worker=0, gpu="0").model_dump_json() + "\n")
    tail = JsonlTail(path)
    tail.read()
    size = path.stat().st_size
    path.write_text(start(0, worker=5, gpu="5").model_dump_json() + "\n")  # same inode, same size
    assert path.stat().st_size == size
    got = tail.read()
    assert got.reset and b'"worker":5' in got.lines[0]


def test_blank_lines_and_appends_never_look_like_a_rewrite(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = JsonlTail(path)
    for i in range(4):
        append(path, progress(i, i), raw="\n")
        got = tail.read()
        assert not got.reset and len(got.lines) == 1


def test_max_lines_reads_in_chunks(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, *[progress(i, i) for i in range(5)])
    tail = JsonlTail(path, max_lines=2)
    sizes = []
    while True:
        got = tail.read()
        sizes.append(len(got.lines))
        if not got.more:
            break
    assert sizes == [2, 2, 1]


def test_malformed_lines_are_counted_not_raised(tmp_path):
    lines = [
        start(0).model_dump_json().encode(),
        b"{not json",
        b'{"type": "progress", "time": 1}',
        b"\xff\xfe garbage",
        error(3, "boom").model_dump_json().encode(),
    ]
    events, bad, reason = parse_lines(lines)
    assert [e.type for e in events] == ["run_start", "error"]
    assert bad == 3 and reason


def test_follower_polls_each_run_and_skips_blank_lines(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    append(a / "events.jsonl", start(0), raw="\n\n")
    append(a / "events.jsonl", progress(1, 1), raw="garbage\n")
    follower = RunFollower([a, b])
    ba, bb = follower.poll()
    assert (ba.source, len(ba.events), ba.malformed, ba.exists) == (0, 2, 1, True)
    assert (bb.source, bb.events, bb.exists) == (1, [], False)
    assert events_path(a / "events.jsonl") == a / "events.jsonl"
