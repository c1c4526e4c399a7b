"""docs/run-files.md "Reading the files": each library's snippet, run on a run directory whose
rare event fields (error, run_end) come after thousands of progress lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.records import ErrorEvent, GameRecord, ProgressEvent, RunEndEvent
from tests.helpers import make_game

DOC = Path(__file__).resolve().parents[3] / "docs" / "run-files.md"


def snippets() -> dict[str, str]:
    text = DOC.read_text().split("## Reading the files", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return {re.match(r"import (\w+)", b).group(1): b for b in blocks}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("docs") / "run"
    run.mkdir()
    games = [make_game([(10, False)], end="stop", repetition=i) for i in range(3)]
    (run / "games.jsonl").write_text("".join(g.model_dump_json() + "\n" for g in games))
    base = dict(time=1.0, run_id="r")
    lines = [ProgressEvent(**base, games_done=0, games_total=3, requests=i, requests_per_s=1.0,
                           tokens_per_s=1.0)
             for i in range(3000)]
    lines += [ErrorEvent(**base, message="boom", game_id="g", fatal=True),
              RunEndEvent(**base, games_done=3, games_total=3, wall_s=2.5, status="failed")]
    (run / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in lines))
    assert isinstance(games[0], GameRecord)
    return run


@pytest.mark.parametrize("library", ["pandas", "polars", "duckdb"])
def test_reading_snippet_keeps_the_rare_fields(library, run_dir):
    pytest.importorskip(library)
    code = snippets()[library].replace('"runs/demo"', repr(str(run_dir)))
    ns: dict = {}
    exec(compile(code, f"docs/run-files.md ({library})", "exec"), ns)
    events, ends = ns["events"], ns["ends"]
    assert {"message", "fatal", "status", "wall_s"} <= set(events.columns)
    assert len(ns["games"]) == 3 and len(events) == 3002
    assert list(ends["status"]) == ["failed"] and list(ends["wall_s"]) == [2.5]
