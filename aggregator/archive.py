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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from lxml import etree

from .config import FORMATS, Config, OutputConfig
from .documents import ARCHIVE_DIR
from .errors import PublishError
from .models import StoryEntry
from .publish import ArchivePage, ArchiveUpdate, write_atomic
from .select import StoryRef, load_entries, recent, story_refs
from .store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True)
class Page:
    """An archive page as it is on disk."""

    number: int
    uids: tuple[str, ...]
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


FULL_PAGES_INDEX = ".full-pages.json"


def read_pages(directory: Path) -> list[Page]:
    """The archive pages of one output, oldest first; [] when it has none.

    Full pages never change, so their story ids are kept in a small index
    beside them and each is parsed once; only the open page is read every time.
    """
    if not directory.is_dir():
        return []
    names = set(os.listdir(directory))
    numbers = sorted(int(name[:-5]) for name in names if name.endswith(".atom") and name[:-5].isdigit())
    if numbers != list(range(1, len(numbers) + 1)):
        raise PublishError(f"archive pages in {directory} are not numbered 1..{len(numbers)}; "
                           "restore the missing ones or move the folder aside to start the archive afresh")
    index = _full_pages_index(directory)
    pages = []
    for number in numbers:
        formats = frozenset(fmt for fmt in FORMATS if f"{number}.{fmt}" in names)
        if str(number) in index:
            pages.append(Page(number, tuple(index[str(number)]), True, formats))
        else:
            pages.append(_read_page(directory, number, names))
    full = {str(p.number): list(p.uids) for p in pages if p.full}
    if full != index:
        write_atomic(directory / FULL_PAGES_INDEX, json.dumps(full, separators=(",", ":")).encode())
    return pages


def _full_pages_index(directory: Path) -> dict[str, list[str]]:
    try:
        index = json.loads((directory / FULL_PAGES_INDEX).read_bytes())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


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
    pages = read_pages(archive_dir(config, output))
    archived = frozenset(uid for page in pages for uid in page.uids)
    refs = story_refs(store, config, output, skip_uids=archived)
    result = plan(pages, refs, recent(output, refs, now)[:output.limit], output.limit, output.formats)
    entries = load_entries(store, config, list(result.current))
    return entries, ArchiveUpdate(result.newest, _pages(store, config, output, result.pages))


def _pages(store: Store, config: Config, output: OutputConfig, plans: tuple[PagePlan, ...]) -> Iterator[ArchivePage]:
    """Loaded one page at a time, so a first publish over a long history stays small in memory."""
    for page in plans:
        kept_refs = story_refs(store, config, output, only_uids=frozenset(page.kept), filtered=False) if page.kept else []
        refs = sorted([*kept_refs, *page.added], key=lambda r: (r.published, r.uid), reverse=True)
        yield ArchivePage(page.number, tuple(load_entries(store, config, refs)), page.full, page.formats)
