"""What went wrong on a Ray cluster, in the harness's own words: the worker's error line from
inside a Ray exception, and the likely cause of a refused connection."""

from __future__ import annotations

import os
import re
import socket

from harness.errors import HarnessError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: Ray's header lines around a worker's traceback: not the error.
#: Ray's words for a dead actor: the reason, and for a dead process Ray's exit type and detail.
_ACTOR_DIED = re.compile(
    r"(The actor (?:is dead|died) because [^.]*)\."
    r"(?:.*?Worker exit type: (\w+) Worker exit detail: ([^.]*)\.)?",
    re.S,
)
#: Ray's words for an actor it cannot reach (its node lost, or not yet declared dead).
_UNAVAILABLE = re.compile(
    r"The actor \w+ is unavailable.*?(Failed to connect to remote host: [^.;]*|rpc_code: \d+)", re.S
)
_RAY_LINES = re.compile(r"^(ray::|Ray\w*Error|Traceback|\s+File |\s+\^|During handling|The above exception)")


def ray_error_line(error: BaseException) -> str:
    """The harness's own error line from a RayTaskError / RayActorError: the cause's message when
    Ray kept it (a HarnessError says exactly what is wrong), else the last line of the remote
    traceback; never Ray's header, never terminal colour codes. One line, at most 500 characters."""
    died = _ACTOR_DIED.search(_ANSI.sub("", str(error)))
    if died:
        reason, kind, detail = died.groups()
        return (reason + (f" ({kind}: {detail.strip()})" if kind else ""))[:500]
    unreachable = _UNAVAILABLE.search(_ANSI.sub("", str(error)))
    if unreachable:
        return f"The actor is unreachable, its node may be lost ({unreachable.group(1).strip()})"[:500]
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and cause is not error:
        text = str(cause) if isinstance(cause, HarnessError) else f"{type(cause).__name__}: {cause}"
    else:
        text = str(error)
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    kept = [line for line in lines if line.strip() and not _RAY_LINES.match(line)]
    line = kept[-1].strip() if kept else type(error).__name__
    return line[:500]


def _listening(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def explain_refused(address: str, error: BaseException) -> str:
    """Why `ray.init(address)` failed, in one line with what to do."""
    said = _ANSI.sub("", str(error)).strip()
    what = said.splitlines()[0][:200] if said else type(error).__name__
    if address.startswith("ray://"):
        try:
            import ray.util.client  # noqa: F401
        except ImportError:
            return f"--ray {address}: ray:// needs the Ray client: pip install 'ray[client]' ({what})"
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if host and port.isdigit() and not _listening(host, int(port)):
        return (f"--ray {address}: nothing listens at {host}:{port}: start the head there with "
                f"`ray start --head --port {port}`, or use --ray local ({what})")
    token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if "auth" in what.lower() or "token" in what.lower() or not token:
        return (f"--ray {address}: the cluster refused this driver ({what}); Ray >= 2.60 clusters use "
                "token authentication: give the driver the head's token (RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token copied from the head) and RAY_AUTH_MODE=token; "
                "see docs/workers.md)")
    return f"--ray {address}: cannot connect ({what})"
