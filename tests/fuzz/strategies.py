"""Hostile values and damaged lines for the fuzz suite, and the one assertion every property makes:
the command succeeds, or it prints one line and exits 2, and it changes no file it was given."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.cli import main

#: Numbers at and past every bound a reader or a config might meet.
EDGE_INTS = [-(2**63) - 1, -(2**63), -1, 0, 1, 2, 5, 100, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 10**30]
EDGE_FLOATS = [0.0, -0.0, 1e-300, 0.5, 1.5, 1e300, math.inf, -math.inf, math.nan]

scalars = st.one_of(
    st.sampled_from(EDGE_INTS), st.integers(-1000, 1000), st.sampled_from(EDGE_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=12), st.sampled_from(["", " ", "\x00", "é", "-", ",", "../..", "/"]),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2)
)


def toml_value(v: Any) -> str:
    """`v` in TOML (inline tables and arrays; strings as JSON strings, which TOML reads alike)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(data: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(kk)} = {toml_value(vv)}" for kk, vv in v.items())
        for k, v in data.items() if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n\n".join(tables) + "\n"


@st.composite
def damaged_json(draw, obj: Any) -> Any:
    """`obj` (parsed JSON) with one place changed: a value replaced, a key removed or added."""
    obj = json.loads(json.dumps(obj))
    parent, key = None, None
    node = obj
    for _ in range(draw(st.integers(0, 4))):  # walk down a few levels
        if isinstance(node, dict) and node:
            parent, key = node, draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            parent, key = node, draw(st.integers(0, len(node) - 1))
        else:
            break
        node = parent[key]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if parent is None:
        return draw(values) if action == "replace" else obj
    if action == "remove" and isinstance(parent, dict):
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(values)
    else:
        parent[key] = draw(values)
    return obj


@st.composite
def damaged_bytes(draw, data: bytes) -> bytes:
    """`data` with bytes cut, inserted or flipped somewhere."""
    at = draw(st.integers(0, len(data)))
    action = draw(st.sampled_from(["cut", "insert", "flip", "invalid_utf8"]))
    if action == "cut":
        return data[:at] + data[draw(st.integers(at, len(data))):]
    if action == "insert":
        return data[:at] + draw(st.binary(max_size=8)) + data[at:]
    if action == "invalid_utf8":
        return data[:at] + b"\xff\xfe\xc3" + data[at:]
    if at == len(data):
        return data
    return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]


@st.composite
def damaged_lines(draw, lines: list[bytes]) -> bytes:
    """A JSON Lines file made of `lines` with some of them damaged (as JSON or as bytes), doubled
    or dropped, and possibly a torn last line."""
    out = []
    for line in lines:
        kind = draw(st.sampled_from(["keep", "keep", "json", "bytes", "double", "drop"]))
        if kind == "json":
            out.append(json.dumps(draw(damaged_json(json.loads(line))), ensure_ascii=False).encode())
        elif kind == "bytes":
            out.append(draw(damaged_bytes(line.rstrip(b"\n"))))
        elif kind == "double":
            out += [line.rstrip(b"\n")] * 2
        elif kind == "keep":
            out.append(line.rstrip(b"\n"))
    text = b"\n".join(out) + b"\n"
    return text[: draw(st.integers(len(text) // 2, len(text)))] if draw(st.booleans()) else text


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    """`harness ARGV` in this process: its exit code and its non-blank stderr lines. An exception
    out of `main` is a traceback: it fails the property as it is."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


def assert_clean(code: int, err: list[str], before: dict[Path, bytes], allowed_codes=(0,)) -> None:
    """Success (an allowed code), or exactly one `harness: error:` line and exit 2; the files that
    were there before are unchanged."""
    if code not in allowed_codes:
        assert (code, len(err)) == (2, 1), (code, err)
        assert err[0].startswith("harness: error: "), err
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
