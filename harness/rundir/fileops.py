"""Writing run files by name without following a symbolic link, and without leaving a part behind.

A link planted under a run file's name (or brought along by a copy) would send game lines, a
torn-tail cut or a manifest into the file it points at. So:
- files appended to or cut are opened with O_NOFOLLOW (`open_nofollow`), and a link there is
  refused with one line naming it;
- files replaced whole (`write_atomic`) are written to a temporary file of a new name, created
  exclusively (O_EXCL: never an existing file or link), then renamed over the name: a rename
  replaces a link itself, never its target, and a crash leaves the old file or the new one.
  A failed write (a full disk) removes the temporary file.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from harness.errors import RunDirError

#: errno values of a full disk or an exhausted quota.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE


def write_all(fd: int, data: bytes, path: str | Path, *, fsync: bool = False) -> None:
    """Write all of `data` (then fsync when asked); an OSError names `path` (a write on a
    descriptor names no file)."""
    try:
        while data:
            data = data[os.write(fd, data):]
        if fsync:
            os.fsync(fd)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def open_nofollow(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` that refuses a symbolic link at `path` (RunDirError naming it)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP and os.path.islink(path):
            raise RunDirError(
                f"{path}: is a symbolic link; run files are never written through a link "
                "(remove it, or use another --out)"
            ) from None
        raise


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` (fsynced), through an exclusively created temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            write_all(fd, data, path, fsync=True)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
