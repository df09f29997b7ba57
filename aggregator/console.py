"""What the command line writes to: its standard output, which a reader may close early, and the progress bar."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO


class _Stdout:
    """Standard output that, once its reader has gone (`aggregator status | head -1`), writes nowhere.

    Python raises BrokenPipeError on the next write or flush; here the stream's
    descriptor is pointed at /dev/null instead, so the command goes on to the end
    (a `once` still publishes) and exits without a traceback.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str | bytes) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard()
            self._stream.flush()  # what was buffered goes to /dev/null

    def _discard(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    @property
    def buffer(self) -> _Stdout:
        """The bytes beneath (`opml export` writes its XML there), as forgiving of a closed pipe."""
        return _Stdout(self._stream.buffer)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def closable_stdout() -> Iterator[None]:
    """sys.stdout as _Stdout for the length of a command."""
    original = sys.stdout
    sys.stdout = _Stdout(original)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = original


def progress(total: int):
    """A progress bar over `total` sources on stderr, when stderr is a terminal (else one that shows nothing)."""
    from tqdm import tqdm

    terminal = sys.stderr.isatty()
    size = os.get_terminal_size(sys.stderr.fileno()) if terminal else None
    # A terminal that reports no size (a bare pty) would otherwise hide the bar entirely.
    return tqdm(total=total, file=sys.stderr, unit="source", disable=not terminal, leave=False,
                ncols=(size.columns or 80) if size else None, nrows=(size.lines or 24) if size else None)
