"""Atomic file writes: a reader never sees a partial file, and identical bytes are never written again."""

from __future__ import annotations

import glob
import os
import tempfile
import time
from pathlib import Path

from ..errors import PublishError


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` (write beside, fsync, rename); False when it already holds them."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:  # a large document is not read in vain
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc.strerror}") from exc
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
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


def _remove_stale_temporaries(path: Path, age: float = 60.0) -> None:
    """A writer killed mid-write (kill -9, power loss) leaves its temporary file; sweep old ones away."""
    cutoff = time.time() - age
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            pass
