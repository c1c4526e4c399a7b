"""The demo's games through a vLLM OpenAI server against the in-process vLLM backend, same machine,
same engine settings, one sitting: the wall time of each `harness run games` and their ratio.

  (a) in-process: `harness run games --config configs/demo.toml --backend vllm`
  (b) endpoint:   the same games (configs/serve-demo.toml: the demo's settings, kind = "openai")
      through `python -m vllm.entrypoints.openai.api_server` started here with the engine settings
      of configs/demo.toml. (a) includes the engine's start (the command's whole wall time); (b) runs
      against a server already up, whose start-up is timed apart: both ratios are printed.

    python bench/endpoint_bench.py                   # the 128-game demo, both ways (about 10 min on 2 cores)
    python bench/endpoint_bench.py --conditions 8    # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outcomes(run: Path) -> dict[str, str]:
    lines = (run / "games.jsonl").read_text().splitlines()
    return {g["game_id"]: f"{g['outcome']}:{g['final_balance']}" for g in map(json.loads, lines)}


def _play(config: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "harness", "run", "games", "--config", str(config), "--out", str(out),
           "--quiet", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def _start_server(model: str, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="2", VLLM_LOGGING_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--max-model-len", "1024", "--max-num-seqs", "64", "--max-num-batched-tokens", str(64 * 1024),
           "--enforce-eager", "--disable-log-stats", "--seed", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return proc, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the server did not start; see {log}") from None
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conditions", type=int, default=128, help="The first N conditions of the grid.")
    args = parser.parse_args()

    from harness.backends.embedded import ensure_checkpoint
    from harness.game.conditions import grid

    ids = ",".join(c.id for c in grid("128")[: args.conditions])
    extra = ["--conditions", ids] if args.conditions < 128 else []
    model = str(ensure_checkpoint())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inproc = _play(ROOT / "configs/demo.toml", work / "inproc", ["--backend", "vllm", *extra])
        port = _free_port()
        served_config = work / "serve.toml"
        served_config.write_text((ROOT / "configs/serve-demo.toml").read_text()
                                 .replace("http://127.0.0.1:8000/v1", f"http://127.0.0.1:{port}/v1"))
        server, start_s = _start_server(model, port, work / "server.log")
        try:
            served = _play(served_config, work / "served", extra)
        finally:
            server.terminate()
            server.wait(timeout=60)
        a, b = _outcomes(work / "inproc"), _outcomes(work / "served")
    same = sum(a[k] == b.get(k) for k in a)
    print(json.dumps({
        "games": len(a), "in_process_wall_s": round(inproc, 1), "endpoint_wall_s": round(served, 1),
        "server_start_s": round(start_s, 1),
        "ratio_endpoint_over_in_process": round(served / inproc, 3),
        "ratio_with_server_start": round((served + start_s) / inproc, 3),
        "same_outcome_and_balance": f"{same}/{len(a)}",
    }, indent=2))


if __name__ == "__main__":
    main()
