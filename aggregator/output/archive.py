"""Feed history (RFC 5005): which stories the current document holds, which go to archive pages.

The current document holds the newest `limit` stories that are not archived
yet (and inside `since`). Every other story the output selects goes, oldest
first, into the newest archive page `<dir>/archive/<id>/<n>.<format>`; a page
holds `limit` stories. A page that fills is never written again, so it links
its successor (next-archive) at once, and that successor is created at once,
empty if need be: a link in a page that never changes must never dangle. The
current document's prev-archive names the newest page holding entries, so a
reader walking back from it meets no empty document; the empty successor is
reached only forward, from the full page before it. The pages on disk are the
record of what is archived, so a story is in exactly one document; publish.py
puts one publish's pages and current documents in place together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from lxml import etree

from ..config import Config, OutputConfig
from ..errors import PublishError
from ..models import StoryEntry
from ..store import Store
from ..store.publications import Publication
from .documents import ARCHIVE_DIR, DOCUMENT_FORMATS, formats_of
from .pageindex import OLD_FULL_PAGES_INDEX, PageIndexes, Archived, append_index, index_lines
from .select import RejectedCopies, StoryRef, StorySet, load_entries, recent, story_refs

ATOM = "{http://www.w3.org/2005/Atom}"
CHUNK = 500  # uids looked up at a time
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
class ArchivePage:
    """An archive page to (re)write: its number, every entry it holds, whether it is now full."""

    number: int
    entries: tuple[StoryEntry, ...]
    full: bool
    formats: tuple[str, ...]  # the formats to write (a full page is only written where missing)
    index: bool = False  # a page written full: add it to the index of full pages once it is in place


@dataclass(frozen=True)
class ArchiveUpdate:
    newest: int | None  # the newest archive page holding entries: the current document's prev-archive
    pages: Iterable[ArchivePage] = ()  # may be lazy: each page is loaded when it is written
    # What the store remembers once the files are in place (store.publications): this publish's record,
    # the stories archive pages now hold that it did not know of, the queued stories this publish looked at.
    record: Publication | None = None
    archived: tuple[int, ...] = ()
    consumed: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Plan:
    current: tuple[StoryRef, ...]
    pages: tuple[PagePlan, ...]
    newest: int | None  # the newest archive page holding entries after this publish


def archive_dir(config: Config, output: OutputConfig) -> Path:
    return config.output_dir / ARCHIVE_DIR / output.id


@dataclass
class PublishMemory:
    """What publishing keeps from one publish to the next, for a process that publishes again and again
    (the daemon): each archive folder's page index as read so far, and the copies the filters rejected.
    A fresh one only costs reading those again."""

    pages: PageIndexes = field(default_factory=PageIndexes)
    rejected: RejectedCopies = field(default_factory=RejectedCopies)


def read_pages(directory: Path, indexes: PageIndexes | None = None) -> list[Page]:
    """The archive pages of one output, oldest first; [] when it has none.

    Full pages listed in the index are not read; the others are parsed, and
    those found full are added to the index.
    """
    indexes = indexes or PageIndexes()
    if not directory.is_dir():
        indexes.forget(directory)
        return []
    names = set(os.listdir(directory))
    numbers = sorted(int(name[:-5]) for name in names if name.endswith(".atom") and name[:-5].isdigit())
    if numbers != list(range(1, len(numbers) + 1)):
        raise PublishError(f"archive pages in {directory} are not numbered 1..{len(numbers)}; "
                           "restore the missing ones or move the folder aside to start the archive afresh")
    index = indexes.get(directory)
    if not index.numbers <= set(numbers):  # pages were taken away: forget them
        indexes.rewrite(directory, set(numbers))
        index = indexes.get(directory)
    pages, found = [], []
    for number in numbers:
        formats = frozenset(fmt for fmt in DOCUMENT_FORMATS if f"{number}.{fmt}" in names)
        if number in index.numbers:
            pages.append(Page(number, None, True, formats))
            continue
        page = _read_page(directory, number, names)
        pages.append(page)
        if page.full:
            found.append(page)
    if found or OLD_FULL_PAGES_INDEX in names:
        append_index(directory, [(page.number, page.uids) for page in found])
    return pages


def archived_stories(store: Store, directory: Path, pages: list[Page], indexes: PageIndexes) -> StorySet:
    """The ids of the stories the pages hold (the store's ids of their uids).

    What the index says is remembered per store as it is read, so a publish
    only looks up the uids of pages indexed since the last one, and of the
    pages it read itself (the open one).
    """
    stories = StorySet()
    index = indexes.cached(directory)
    if index is not None:
        known = index.archived.get(store)
        if known is None:
            known = index.archived[store] = Archived(0, StorySet(), set())
        if known.offset < index.offset:
            for uids in _chunks(uid for _, page, _ in index_lines(directory, known.offset, index.offset)
                                for uid in page):
                found = store.story_ids(uids)
                for story_id in found.values():
                    known.stories.add(story_id)
                known.unresolved.update(uid for uid in uids if uid not in found)
            known.offset = index.offset
        if known.unresolved:  # archived elsewhere before this store held them: look again, they may be here now
            for uids in _chunks(list(known.unresolved)):
                for uid, story_id in store.story_ids(uids).items():
                    known.stories.add(story_id)
                    known.unresolved.discard(uid)
        stories = known.stories.copy()
    for uids in _chunks(uid for page in pages if page.uids is not None for uid in page.uids):
        for story_id in store.story_ids(uids).values():
            stories.add(story_id)
    return stories


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
    formats = frozenset(fmt for fmt in DOCUMENT_FORMATS if f"{number}.{fmt}" in names)
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
    held = {p.number for p in pages if p.uids is None or p.uids}  # a page known from the index is full
    held = (held - set(writes)) | {n for n, w in writes.items() if w.kept or w.added}
    return Plan(tuple(current), tuple(writes[n] for n in sorted(writes)), max(held, default=None))


@dataclass(frozen=True)
class Unarchived:
    """An output's stories that no archive page holds, and how they were found."""

    refs: list[StoryRef]
    pages: list[Page]
    archived: tuple[int, ...]  # every archived story, when they had to be found from the pages (else none)
    queued: frozenset[int]


def unarchived(store: Store, config: Config, output: OutputConfig, memory: PublishMemory,
               settings: str | None) -> Unarchived:
    """The output's stories no archive page holds yet, from the last publication and the queue when it can.

    Every story of an output is archived, in the current document the last
    publish recorded, or queued since by a poll: with a record made under the
    same `settings` (config and code), those are all that need reading, however
    long the history. Without one (a first publish, a changed config or code,
    an archive folder moved aside) every copy the store holds is read once.
    """
    directory = archive_dir(config, output)
    queued = frozenset(store.queued(output.id)) if settings else frozenset()  # first: later changes stay queued
    pages = read_pages(directory, memory.pages)
    last = store.publication(output.id) if settings else None
    if last is None or last.settings != settings or len(pages) < last.newest_page:
        archived = archived_stories(store, directory, pages, memory.pages)
        refs = story_refs(store, config, output, skip=archived, rejected=memory.rejected)
        return Unarchived(refs, pages, tuple(archived.ids()), queued)
    candidates = set(last.current) | queued
    since = pages[max(last.newest_page - 1, 0):]  # the open page then, and any a crash left unrecorded
    indexed = {p.number for p in since if p.uids is None}
    uids = memory.pages.uids(directory, indexed) if indexed else {}
    written = {uid for p in since for uid in (p.uids if p.uids is not None else uids.get(p.number, ()))}
    gone = store.archived_among(output.id, candidates) | set(store.story_ids(written).values())
    refs = story_refs(store, config, output, only_ids=candidates - gone, rejected=memory.rejected)
    return Unarchived(refs, pages, (), queued)


def prepare(store: Store, config: Config, output: OutputConfig, now: datetime | None = None,
            memory: PublishMemory | None = None, settings: str | None = None
            ) -> tuple[list[StoryEntry], ArchiveUpdate]:
    """The current document's entries and the archive pages to write for one output.

    With `settings` (a digest of the config and code the output is rendered
    with), only what can change the documents is read: see `unarchived`."""
    now = now or datetime.now(timezone.utc)
    memory = memory or PublishMemory()
    directory = archive_dir(config, output)
    found = unarchived(store, config, output, memory, settings)
    refs, pages = found.refs, found.pages
    formats = formats_of(output)
    unread = {p.number for p in pages if p.uids is None and set(formats) - p.formats}
    if unread:  # a format added to the output: those pages are written again, with the stories they hold
        uids = memory.pages.uids(directory, unread)
        pages = [replace(p, uids=uids.get(p.number, ())) if p.number in unread else p for p in pages]
    result = plan(pages, refs, recent(output, refs, now)[:output.limit], output.limit, formats)
    entries = load_entries(store, config, list(result.current))
    record = Publication(settings, frozenset(r.story_id for r in result.current),
                         max([len(pages), *(p.number for p in result.pages)])) if settings else None
    added = tuple(r.story_id for p in result.pages for r in p.added)
    return entries, ArchiveUpdate(result.newest, _pages(store, config, output, result.pages, memory.pages),
                                  record, found.archived + added, found.queued)


def open_stories(store: Store, config: Config, output: OutputConfig, memory: PublishMemory | None = None,
                 settings: str | None = None) -> set[int]:
    """The ids of the stories this output's documents can still change: those no archive page holds yet (the
    current document's, and those the next publish will archive) and those of the open archive page, which
    is written again as it fills. Retention never prunes these (SPEC §6.1)."""
    found = unarchived(store, config, output, memory or PublishMemory(), settings)
    kept = {ref.story_id for ref in found.refs} | set(found.queued)
    if found.pages and not found.pages[-1].full:
        kept.update(store.story_ids(found.pages[-1].uids).values())
    return kept


def _pages(store: Store, config: Config, output: OutputConfig, plans: tuple[PagePlan, ...],
           indexes: PageIndexes) -> Iterator[ArchivePage]:
    """Loaded one page at a time, so a first publish over a long history stays small in memory."""
    directory = archive_dir(config, output)
    metas: dict = {}
    for page in plans:
        kept_refs = story_refs(store, config, output, only_uids=frozenset(page.kept), filtered=False) if page.kept else []
        refs = sorted([*kept_refs, *page.added], key=lambda r: (r.published, r.uid), reverse=True)
        entries = tuple(load_entries(store, config, refs, metas))
        yield ArchivePage(page.number, entries, page.full, page.formats,
                          index=page.full and page.number not in indexes.get(directory).numbers)
