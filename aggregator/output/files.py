"""Atomic file writes: a reader never sees a partial file, and identical bytes are never written again."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..errors import PublishError

_TEMPORARY_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> bool:
    """Replace `path` with `data` (write beside, fsync, rename); False when it already holds them.

    `durable=False` (many small files in one folder: story pages) leaves out the fsyncs and the sweep of
    stale temporaries (the caller does those once for the folder: `sync_folder`): a reader still never
    sees a partial file, but after a power cut a file may be empty; its size then no longer matches what
    Rendered recorded, so the next publish writes it again."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:  # a large document is not read in vain
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc.strerror}") from exc
    # The temporary's name is this thread's own (no random name to draw and retry): only a writer killed
    # mid-write leaves one behind, and the same thread opening it again simply truncates it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        try:
            fd = os.open(tmp, _TEMPORARY_FLAGS, 0o644)
        except FileNotFoundError:  # the folder's first file
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, _TEMPORARY_FLAGS, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        if durable:
            _fsync_folder(path.parent)
            _remove_stale_temporaries(path)
    except OSError as exc:
        hint = "free some disk space" if exc.errno in (28, 27, 122) else "check that the output folder is writable"
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}; {hint}") from exc
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return True


def sync_folder(directory: Path) -> None:
    """After `write_atomic(..., durable=False)` into `directory`: its entries to disk once, stale temporaries swept."""
    try:
        _fsync_folder(directory)
    except OSError as exc:
        raise PublishError(f"cannot write {directory}: {exc.strerror or exc}; check that the output folder "
                           "is writable") from exc
    _remove_stale_temporaries(directory, folder=True)


def _fsync_folder(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _remove_stale_temporaries(path: Path, age: float = 60.0, folder: bool = False) -> None:
    """A writer killed mid-write (kill -9, power loss) leaves its temporary file (`.NAME.PID-THREAD.tmp`); sweep old
    ones away: those of `path`, or with `folder` all in that folder (a folder of story pages holds every page
    ever written, so its names are read by scandir and compared as strings, not matched one by one)."""
    cutoff = time.time() - age
    directory, prefix = (path, ".") if folder else (path.parent, f".{path.name}.")
    try:
        with os.scandir(directory) as entries:
            leftovers = [e.path for e in entries if e.name.endswith(".tmp") and e.name.startswith(prefix)]
    except OSError:
        return
    for leftover in leftovers:
        try:
            if os.stat(leftover).st_mtime < cutoff:
                os.unlink(leftover)
        except OSError:
            pass
