"""The index of an output's full archive pages, so a publish never parses a page that can no longer change.

`<dir>/archive/<id>/.full-pages.jsonl` holds one line per full page,
`[number, [uid, …]]`, appended as pages fill. `PageIndexes` remembers, per
folder and across publishes, how much of each index was read, so a publish
reads only the lines appended since the last one; losing what it remembers
only costs reading the index again.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import PublishError
from .select import StorySet

#: One line per full page, `[number, [uid, …]]`, appended as pages fill: full pages never change, so each is
#: parsed once, and a long archive is read a line at a time, then only as it grows.
FULL_PAGES_INDEX = ".full-pages.jsonl"
OLD_FULL_PAGES_INDEX = ".full-pages.json"  # one JSON object, read whole; replaced by the above


@dataclass
class Archived:
    offset: int  # the bytes of the index read into `stories`
    stories: StorySet
    unresolved: set[str]  # uids of the index that the store does not hold


@dataclass
class _Index:
    identity: tuple[int, int]  # device and inode of the index file
    offset: int  # the bytes read, whole lines
    tail: bytes  # the last bytes read: a file grown from what was read ends the same way there
    numbers: set[int]
    archived: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)  # Store → Archived


_TAIL = 64


class PageIndexes:
    """What each archive folder's index lists, read whole the first time, then only the lines appended since."""

    def __init__(self):
        self._indexes: dict[str, _Index] = {}

    def cached(self, directory: Path) -> _Index | None:
        """The index as last read, without looking at the file again."""
        return self._indexes.get(str(directory))

    def forget(self, directory: Path) -> None:
        self._indexes.pop(str(directory), None)

    def get(self, directory: Path) -> _Index:
        path = directory / FULL_PAGES_INDEX
        try:
            stat = path.stat()
        except OSError:
            index = self._indexes[str(directory)] = _Index((0, 0), 0, b"", set())
            return index
        index = self._indexes.get(str(directory))
        if index is not None and (index.identity != (stat.st_dev, stat.st_ino) or stat.st_size < index.offset
                                  or _bytes(path, index.offset - len(index.tail), len(index.tail)) != index.tail):
            index = None
        if index is None:
            index = self._indexes[str(directory)] = _Index((stat.st_dev, stat.st_ino), 0, b"", set())
        if stat.st_size > index.offset:
            end = index.offset
            for number, _, end in index_lines(directory, index.offset, stat.st_size):
                if number is not None:
                    index.numbers.add(number)
            if end > index.offset:  # up to the last whole line: a line being appended is read next time
                index.offset = end
                index.tail = _bytes(path, max(end - _TAIL, 0), min(_TAIL, end))
        return index

    def uids(self, directory: Path, numbers: set[int]) -> dict[int, tuple[str, ...]]:
        """The uids the index lists for these pages."""
        found = {}
        for number, uids, _ in index_lines(directory, 0, self.get(directory).offset):
            if number in numbers:
                found[number] = tuple(uids)
        return found

    def rewrite(self, directory: Path, keep: set[int]) -> None:
        """The index without the pages no longer on disk, written beside and renamed over it."""
        path = directory / FULL_PAGES_INDEX
        temporary = directory / f".{FULL_PAGES_INDEX}.tmp"
        try:
            with temporary.open("wb") as f:
                for number, uids, _ in index_lines(directory, 0, self.get(directory).offset):
                    if number in keep:
                        f.write(_line(number, uids))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
        self.forget(directory)


def _bytes(path: Path, start: int, size: int) -> bytes:
    if size <= 0:
        return b""
    with path.open("rb") as f:
        f.seek(start)
        return f.read(size)


def index_lines(directory: Path, start: int, end: int) -> Iterator[tuple[int | None, list[str], int]]:
    """(number, uids, offset after the line) of the whole lines between two offsets, a line at a time;
    number None for a line that is not well formed (torn by a crash), which is skipped."""
    with (directory / FULL_PAGES_INDEX).open("rb") as f:
        f.seek(start)
        position = start
        for line in f:
            position += len(line)
            if position > end or not line.endswith(b"\n"):
                return
            try:
                number, uids = json.loads(line)
            except ValueError:
                number, uids = None, []
            if not isinstance(number, int) or not isinstance(uids, list):
                number, uids = None, []
            yield number, uids, position


def _line(number: int, uids: Iterable[str]) -> bytes:
    return json.dumps([number, list(uids)], separators=(",", ":")).encode() + b"\n"


def append_index(directory: Path, pages: list[tuple[int, Iterable[str]]]) -> None:
    """Add full pages, (number, uids) each, to the index; a torn line left by a crash only makes its page be
    parsed again."""
    path = directory / FULL_PAGES_INDEX
    try:
        if pages:
            with path.open("ab") as f:
                f.write(b"".join(_line(number, uids) for number, uids in pages))
                f.flush()
                os.fsync(f.fileno())
        (directory / OLD_FULL_PAGES_INDEX).unlink(missing_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc


class PendingIndex:
    """The index lines of pages a publish writes full, held until those pages are in place: in a file beside
    the index (`.<index>.<random>.staged`), since a first publish over a long history fills thousands of
    pages, then appended to the index. Lost by a crash, they only make those pages be parsed once more."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._file = None

    def add(self, number: int, uids: Iterable[str]) -> None:
        try:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = (self.directory / f".{FULL_PAGES_INDEX}.{secrets.token_hex(4)}.staged").open("w+b")
            self._file.write(_line(number, uids))
        except OSError as exc:
            raise PublishError(f"cannot write beside {self.directory / FULL_PAGES_INDEX}: "
                               f"{exc.strerror or exc}") from exc

    def commit(self) -> None:
        """Append the lines to the index, once the pages they list are in place."""
        if self._file is None:
            return
        path = self.directory / FULL_PAGES_INDEX
        try:
            self._file.seek(0)
            with path.open("ab") as f:
                shutil.copyfileobj(self._file, f)
                f.flush()
                os.fsync(f.fileno())
            (self.directory / OLD_FULL_PAGES_INDEX).unlink(missing_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
        finally:
            self.discard()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = None
