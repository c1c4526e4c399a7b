"""What the study runs, and when: each experiment's `harness` argv, its dependencies, its devices.

Pure: no process is started here. Every argv is parsed by harness's own argparse parser when the
study is loaded, so a misspelt option is one `ConfigError` line naming `experiment[i].options.KEY`
before anything runs, not a failure an hour into the study.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.errors import ConfigError
from harness.study.config import Experiment, OptionValue, Study
from harness.study.kinds import KINDS, Resolved

#: Flags the study sets itself; an option naming one is a mistake.
_SET_BY_STUDY = {"out", "events", "sae", "features", "causal", "config", "device", "gpus", "ray", "no-events"}
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def option_flags(options: Mapping[str, OptionValue]) -> list[str]:
    """`{top = 3, all-features = true, layers = [1, 2]}` -> `--top 3 --all-features --layers 1,2`;
    false leaves the flag out."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            continue
        elif isinstance(value, list):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _sae_spec(study: Study, exp: Experiment, root: Path) -> str:
    """A sae-train experiment's folder, or the spec as written (relative paths from the study file)."""
    spec = exp.sae or ""
    if spec in {e.name for e in study.experiment}:
        return str(root / spec)
    if "@" in spec or Path(spec).is_absolute():
        return spec
    return str(study.base_dir / spec)


def _inherited_layers(study: Study, exp: Experiment) -> dict[str, OptionValue]:
    """An SAE pass on a sae-train experiment reads the layers it trained unless told otherwise."""
    if not KINDS[exp.kind].inherits_layers or "layers" in exp.options or exp.sae is None:
        return {}
    names = {e.name for e in study.experiment}
    if exp.sae in names and "layers" in study.get(exp.sae).options:
        return {"layers": study.get(exp.sae).options["layers"]}
    return {}


def resolve(study: Study, exp: Experiment, root: Path, ray: str | None = None) -> Resolved:
    """`exp`'s inputs as paths: the experiments it names are folders of the study directory `root`."""
    kind = KINDS[exp.kind]
    files = {}
    for name in kind.file_inputs:
        ref = getattr(exp, name)
        if ref is not None:
            output = KINDS[study.get(ref).kind].output
            assert output is not None, f"a {study.get(ref).kind} experiment writes no file to read"
            files[name] = root / ref / output
    return Resolved(
        out=root / exp.name, devices=exp.devices,
        config=study.base_dir / exp.config if exp.config is not None else None,
        runs=[root / r for r in exp.runs], run=root / exp.run if exp.run is not None else None,
        sae=_sae_spec(study, exp, root) if exp.sae is not None else None, files=files, ray=ray,
    )


def experiment_argv(study: Study, exp: Experiment, root: Path, ray: str | None = None) -> list[str]:
    """The argv after `harness` that runs `exp` with its folder under the study directory `root`."""
    argv = KINDS[exp.kind].argv(resolve(study, exp, root, ray))
    return argv + option_flags({**_inherited_layers(study, exp), **exp.options})


def _check_devices(i: int, exp: Experiment, ray: str | None = None) -> None:
    if ray and exp.kind != "games" and exp.devices != ["cpu"]:
        raise ConfigError(
            f"experiment[{i}].devices: with --ray the games run on GPUs Ray hands out, which may include "
            f"{', '.join(exp.devices)} of this machine; a {exp.kind} experiment there could share a GPU with "
            "a games worker: give it devices = ['cpu'], or run the SAE experiments without --ray once the "
            "games are complete"
        )
    for d in exp.devices:
        if not _DEVICE.match(d):
            raise ConfigError(f"experiment[{i}].devices: {d!r} is neither 'cpu' nor 'cuda:N'")
    if exp.kind != "games" and len(exp.devices) > 1:
        raise ConfigError(
            f"experiment[{i}].devices: a {exp.kind} experiment runs on one device; split it into "
            "several experiments (e.g. one per layer range) to use several GPUs"
        )
    if "cpu" in exp.devices and len(exp.devices) > 1:
        raise ConfigError(f"experiment[{i}].devices: 'cpu' and GPUs together")


def _parse_error(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """argparse's complaint about `argv`, or None when it parses."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as e:
        lines = [ln for ln in err.getvalue().splitlines() if "error:" in ln]
        return lines[-1].split("error:", 1)[1].strip() if lines else f"not an option (exit {e.code})"
    return None


def _culprit(message: str, options: Mapping[str, OptionValue]) -> str | None:
    """The option key argparse's message is about, if any."""
    match = re.match(r"(?:argument (--[\w-]+)|unrecognized arguments: (--[\w-]+))", message)
    if match is None:
        return None
    flag = (match.group(1) or match.group(2))[2:]
    return next((k for k in options if k.replace("_", "-") == flag), None)


def command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The sub-parser of the command `argv` starts with (`run games ...` -> `run games`'s parser)."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def _option_dests(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each long flag of the parser, and the attribute it sets."""
    return {f: a.dest for a in parser._actions for f in a.option_strings if f.startswith("--")}


def _check_options(i: int, exp: Experiment, base: list[str], parser: argparse.ArgumentParser) -> None:
    """Each option key is exactly one of the command's own flags (`_` for `-`), and none of the
    flags the study sets itself under any of their spellings; a value is never read as a flag."""
    command = command_parser(parser, base)
    dests = _option_dests(command)
    owned = {dests[f] for f in [*base, *(f"--{name}" for name in _SET_BY_STUDY)] if f in dests}
    for key, value in exp.options.items():
        plain = re.fullmatch(r"[\w.=+-]+", key) is not None
        field = f"experiment[{i}].options" + (f".{key}" if plain else f"[{key!r}]")  # one line, any key
        flag = "--" + key.replace("_", "-")
        if key.startswith("-") or "=" in key or not key.strip():
            raise ConfigError(f"{field}: an option key is a flag's name without dashes, '=' or a value")
        if key.replace("_", "-") in _SET_BY_STUDY or dests.get(flag) in owned:
            raise ConfigError(f"{field}: set by the study, not an option here")
        if flag not in dests:
            raise ConfigError(f"{field}: `{command.prog}` has no option {flag if plain else repr(flag)}")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v.startswith("-") and not _is_number(v):
                raise ConfigError(f"{field}: the value {v!r} starts with '-' and would read as a flag")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_experiment(study: Study, i: int, root: Path, ray: str | None = None,
                     parser: argparse.ArgumentParser | None = None) -> list[str]:
    """The experiment's argv, checked by harness's parser; a mistake is one ConfigError line."""
    from harness.cli import build_parser

    exp = study.experiment[i]
    parser = parser or build_parser()
    try:
        _check_devices(i, exp, ray)
        _check_options(i, exp, KINDS[exp.kind].argv(resolve(study, exp, root, ray)), parser)
        argv = experiment_argv(study, exp, root, ray)
        message = _parse_error(parser, argv)
        if message is not None:
            culprit = _culprit(message, exp.options)
            field = f"experiment[{i}].options" + (f".{culprit}" if culprit else "")
            raise ConfigError(f"{field}: {message} (in `harness {' '.join(argv[:2])}`)")
    except ConfigError as e:
        source = study.source
        raise ConfigError(f"{source}: {e}" if source else str(e)) from None
    return argv


def plan_study(study: Study, root: Path, ray: str | None = None) -> dict[str, list[str]]:
    """Every experiment's argv by name, each checked; the first mistake raises ConfigError."""
    from harness.cli import build_parser

    parser = build_parser()  # one for all: building it imports every command module
    return {e.name: check_experiment(study, i, root, ray, parser) for i, e in enumerate(study.experiment)}


# --- order and scheduling --------------------------------------------------------------------------


def dependency_order(study: Study) -> list[str]:
    """Names such that each comes after what it needs, otherwise in file order."""
    done: list[str] = []
    left = list(study.experiment)
    while left:
        step = [e for e in left if all(n in done for n in e.needs(study))]
        if not step:
            raise ConfigError(f"experiments depend on each other in a cycle: {[e.name for e in left]}")
        done += [e.name for e in step]
        left = [e for e in left if e.name not in done]
    return done


def blocked(study: Study, failed: Iterable[str]) -> set[str]:
    """Experiments that cannot run because one they need (directly or not) failed."""
    out = set(failed)
    for name in dependency_order(study):
        if any(n in out for n in study.get(name).needs(study)):
            out.add(name)
    return out - set(failed)


def ready(study: Study, complete: set[str], started: set[str], failed: set[str]) -> list[str]:
    """Experiments not yet started whose inputs are all complete, in file order."""
    stop = blocked(study, failed) | failed
    return [
        e.name for e in study.experiment
        if e.name not in complete | started | stop and all(n in complete for n in e.needs(study))
    ]


def fits(exp: Experiment, running: Iterable[Experiment], cpu_slots: int) -> bool:
    """Whether `exp` may start beside the running experiments: at most `cpu_slots` on cpu, one
    experiment at a time on each GPU."""
    running = list(running)
    if exp.devices == ["cpu"]:
        return sum(r.devices == ["cpu"] for r in running) < cpu_slots
    busy = {d for r in running for d in r.devices if d != "cpu"}
    return not busy & set(exp.devices)


def device_conflicts(study: Study) -> list[tuple[str, str, str]]:
    """(a, b, device) for experiments that could run at once but share a GPU, so one waits for
    the other: worth a line in the study's plan, not an error."""
    found = []
    exps = study.experiment
    for i, a in enumerate(exps):
        for b in exps[i + 1:]:
            related = a.name in _upstream(study, b.name) or b.name in _upstream(study, a.name)
            shared = sorted(set(a.devices) & set(b.devices) - {"cpu"})
            if shared and not related:
                found.append((a.name, b.name, shared[0]))
    return found


def _upstream(study: Study, name: str) -> set[str]:
    out: set[str] = set()
    todo = list(study.get(name).needs(study))
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += study.get(n).needs(study)
    return out
