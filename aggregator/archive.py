"""Feed history (RFC 5005): which stories the current document holds, which go to archive pages.

The current document holds the newest `limit` stories that are not archived
yet (and inside `since`). Every other story the output selects goes, oldest
first, into the newest archive page `<dir>/archive/<id>/<n>.<format>`; a page
holds `limit` stories. A page that fills links its successor (next-archive),
which is created at once, and is never written again; only the newest page is
open. The pages on disk are the record of what is archived, so a story is in
exactly one document, and a crash between writing pages and the current
document heals on the next publish.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from lxml import etree

from .config import FORMATS, Config, OutputConfig
from .documents import ARCHIVE_DIR
from .errors import PublishError
from .models import StoryEntry
from .publish import ArchivePage, ArchiveUpdate
from .select import CHUNK, StoryRef, StorySet, load_entries, recent, story_ids, story_refs
from .store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True)
class Page:
    """An archive page as it is on disk."""

    number: int
    uids: tuple[str, ...] | None  # None: a full page known from the index, its ids left there until needed
    full: bool
    formats: frozenset[str]


@dataclass(frozen=True)
class PagePlan:
    """A page to write: the stories it already holds, those added now, and in which formats."""

    number: int
    kept: tuple[str, ...]
    added: tuple[StoryRef, ...]
    full: bool
    formats: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    current: tuple[StoryRef, ...]
    pages: tuple[PagePlan, ...]
    newest: int | None  # the newest archive page after this publish


def archive_dir(config: Config, output: OutputConfig) -> Path:
    return config.output_dir / ARCHIVE_DIR / output.id


#: One line per full page, `[number, [uid, …]]`, appended as pages fill: full pages never change, so each is
#: parsed once, and a long archive is read a line at a time, then only as it grows.
FULL_PAGES_INDEX = ".full-pages.jsonl"
OLD_FULL_PAGES_INDEX = ".full-pages.json"  # one JSON object, read whole; replaced by the above


def read_pages(directory: Path) -> list[Page]:
    """The archive pages of one output, oldest first; [] when it has none.

    Full pages listed in the index are not read; the others are parsed, and
    those found full are added to the index.
    """
    if not directory.is_dir():
        _INDEXES.pop(str(directory), None)
        return []
    names = set(os.listdir(directory))
    numbers = sorted(int(name[:-5]) for name in names if name.endswith(".atom") and name[:-5].isdigit())
    if numbers != list(range(1, len(numbers) + 1)):
        raise PublishError(f"archive pages in {directory} are not numbered 1..{len(numbers)}; "
                           "restore the missing ones or move the folder aside to start the archive afresh")
    index = _index(directory)
    if not index.numbers <= set(numbers):  # pages were taken away: forget them
        _rewrite_index(directory, set(numbers))
        index = _index(directory)
    pages, found = [], []
    for number in numbers:
        formats = frozenset(fmt for fmt in FORMATS if f"{number}.{fmt}" in names)
        if number in index.numbers:
            pages.append(Page(number, None, True, formats))
            continue
        page = _read_page(directory, number, names)
        pages.append(page)
        if page.full:
            found.append(page)
    if found or OLD_FULL_PAGES_INDEX in names:
        _append_index(directory, found)
    return pages


def archived_stories(store: Store, directory: Path, pages: list[Page]) -> StorySet:
    """The ids of the stories the pages hold (the store's ids of their uids).

    What the index says is remembered per store as it is read, so a publish
    only looks up the uids of pages indexed since the last one, and of the
    pages it read itself (the open one).
    """
    stories = StorySet()
    index = _INDEXES.get(str(directory))
    if index is not None:
        known = index.archived.get(store)
        if known is None:
            known = index.archived[store] = _Archived(0, StorySet(), set())
        if known.offset < index.offset:
            for uids in _chunks(uid for _, page, _ in _index_lines(directory, known.offset, index.offset)
                                for uid in page):
                found = story_ids(store, uids)
                for story_id in found.values():
                    known.stories.add(story_id)
                known.unresolved.update(uid for uid in uids if uid not in found)
            known.offset = index.offset
        if known.unresolved:  # archived elsewhere before this store held them: look again, they may be here now
            for uids in _chunks(list(known.unresolved)):
                for uid, story_id in story_ids(store, uids).items():
                    known.stories.add(story_id)
                    known.unresolved.discard(uid)
        stories = known.stories.copy()
    for uids in _chunks(uid for page in pages if page.uids is not None for uid in page.uids):
        for story_id in story_ids(store, uids).values():
            stories.add(story_id)
    return stories


@dataclass
class _Archived:
    offset: int  # the bytes of the index read into `stories`
    stories: StorySet
    unresolved: set[str]  # uids of the index that the store does not hold


@dataclass
class _Index:
    identity: tuple[int, int]  # device and inode of the index file
    offset: int  # the bytes read, whole lines
    tail: bytes  # the last bytes read: a file grown from what was read ends the same way there
    numbers: set[int]
    archived: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)  # Store → _Archived


_INDEXES: dict[str, _Index] = {}
_TAIL = 64


def _index(directory: Path) -> _Index:
    """What the index lists, read whole the first time, then only the lines appended since."""
    path = directory / FULL_PAGES_INDEX
    try:
        stat = path.stat()
    except OSError:
        index = _INDEXES[str(directory)] = _Index((0, 0), 0, b"", set())
        return index
    index = _INDEXES.get(str(directory))
    if index is not None and (index.identity != (stat.st_dev, stat.st_ino) or stat.st_size < index.offset
                              or _bytes(path, index.offset - len(index.tail), len(index.tail)) != index.tail):
        index = None
    if index is None:
        index = _INDEXES[str(directory)] = _Index((stat.st_dev, stat.st_ino), 0, b"", set())
    if stat.st_size > index.offset:
        end = index.offset
        for number, _, end in _index_lines(directory, index.offset, stat.st_size):
            if number is not None:
                index.numbers.add(number)
        if end > index.offset:  # up to the last whole line: a line being appended is read next time
            index.offset = end
            index.tail = _bytes(path, max(end - _TAIL, 0), min(_TAIL, end))
    return index


def _bytes(path: Path, start: int, size: int) -> bytes:
    if size <= 0:
        return b""
    with path.open("rb") as f:
        f.seek(start)
        return f.read(size)


def _index_lines(directory: Path, start: int, end: int) -> Iterator[tuple[int | None, list[str], int]]:
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


def _index_uids(directory: Path, numbers: set[int]) -> dict[int, tuple[str, ...]]:
    """The uids the index lists for these pages."""
    found = {}
    for number, uids, _ in _index_lines(directory, 0, _index(directory).offset):
        if number in numbers:
            found[number] = tuple(uids)
    return found


def _line(number: int, uids: Iterable[str]) -> bytes:
    return json.dumps([number, list(uids)], separators=(",", ":")).encode() + b"\n"


def _append_index(directory: Path, pages: list[Page]) -> None:
    """Add full pages to the index; a torn line left by a crash only makes its page be parsed again."""
    path = directory / FULL_PAGES_INDEX
    try:
        if pages:
            with path.open("ab") as f:
                f.write(b"".join(_line(page.number, page.uids) for page in pages))
                f.flush()
                os.fsync(f.fileno())
        (directory / OLD_FULL_PAGES_INDEX).unlink(missing_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _rewrite_index(directory: Path, keep: set[int]) -> None:
    """The index without the pages no longer on disk, written beside and renamed over it."""
    path = directory / FULL_PAGES_INDEX
    temporary = directory / f".{FULL_PAGES_INDEX}.tmp"
    try:
        with temporary.open("wb") as f:
            for number, uids, _ in _index_lines(directory, 0, _index(directory).offset):
                if number in keep:
                    f.write(_line(number, uids))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
    _INDEXES.pop(str(directory), None)


def _chunks(uids: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    chunk = []
    for uid in uids:
        chunk.append(uid)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_page(directory: Path, number: int, names: set[str]) -> Page:
    path = directory / f"{number}.atom"
    try:
        root = etree.parse(str(path), _PARSER).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise PublishError(f"cannot read archive page {path}: {exc}; move the archive folder aside "
                           "to start it afresh") from exc
    uids = tuple((e.text or "").strip() for e in root.iterfind(f"{ATOM}entry/{ATOM}id"))
    full = root.find(f"{ATOM}link[@rel='next-archive']") is not None
    formats = frozenset(fmt for fmt in FORMATS if f"{number}.{fmt}" in names)
    return Page(number, uids, full, formats)


def plan(pages: list[Page], refs: list[StoryRef], current: list[StoryRef], page_size: int,
         formats: tuple[str, ...]) -> Plan:
    """Pure: which pages to write so that every ref outside `current` lands in exactly one page."""
    in_current = {r.uid for r in current}
    overflow = sorted((r for r in refs if r.uid not in in_current), key=lambda r: (r.published, r.story_id))
    writes: dict[int, PagePlan] = {}
    for page in pages:  # a format added to the output since the page was written
        missing = tuple(f for f in formats if f not in page.formats)
        if missing:
            writes[page.number] = PagePlan(page.number, page.uids, (), page.full, missing)
    if overflow or (pages and pages[-1].full):
        if pages and not pages[-1].full:
            number, kept = pages[-1].number, pages[-1].uids
        else:
            number, kept = len(pages) + 1, ()
        queue = overflow
        while True:
            room = max(page_size - len(kept), 0)
            added, queue = queue[:room], queue[room:]
            full = len(kept) + len(added) >= page_size
            writes[number] = PagePlan(number, kept, tuple(added), full, formats)
            if not full:
                break
            number, kept = number + 1, ()
    newest = max([p.number for p in pages] + list(writes), default=None)
    return Plan(tuple(current), tuple(writes[n] for n in sorted(writes)), newest)


def prepare(store: Store, config: Config, output: OutputConfig,
            now: datetime | None = None) -> tuple[list[StoryEntry], ArchiveUpdate]:
    """The current document's entries and the archive pages to write for one output."""
    now = now or datetime.now(timezone.utc)
    directory = archive_dir(config, output)
    pages = read_pages(directory)
    refs = story_refs(store, config, output, skip=archived_stories(store, directory, pages))
    unread = {p.number for p in pages if p.uids is None and set(output.formats) - p.formats}
    if unread:  # a format added to the output: those pages are written again, with the stories they hold
        uids = _index_uids(directory, unread)
        pages = [replace(p, uids=uids.get(p.number, ())) if p.number in unread else p for p in pages]
    result = plan(pages, refs, recent(output, refs, now)[:output.limit], output.limit, output.formats)
    entries = load_entries(store, config, list(result.current))
    return entries, ArchiveUpdate(result.newest, _pages(store, config, output, result.pages))


def _pages(store: Store, config: Config, output: OutputConfig, plans: tuple[PagePlan, ...]) -> Iterator[ArchivePage]:
    """Loaded one page at a time, so a first publish over a long history stays small in memory.

    A page written full is indexed once written, so the next publish need not parse it."""
    directory = archive_dir(config, output)
    metas: dict = {}
    for page in plans:
        kept_refs = story_refs(store, config, output, only_uids=frozenset(page.kept), filtered=False) if page.kept else []
        refs = sorted([*kept_refs, *page.added], key=lambda r: (r.published, r.uid), reverse=True)
        entries = tuple(load_entries(store, config, refs, metas))
        yield ArchivePage(page.number, entries, page.full, page.formats)
        if page.full and page.number not in _index(directory).numbers:
            _append_index(directory, [Page(page.number, tuple(e.uid for e in entries), True, frozenset(page.formats))])
