"""The HTML pages beside the feeds (SPEC §4.1): index.html, each output's river, one page per story. Jinja2 stops here.

Templates ship in the package (``templates/``); ``output.templates`` names a
folder whose files override any of them by name (a theme). Autoescaping is on
for every template, so a hostile title is text; the only HTML passed through
is republished content, sanitised when it was stored and made here to load
nothing from elsewhere (pageview.page_content).

Which pages are written: a river page with each feed document (publish.py
calls `Site.river` for the format ``html``), the story page of every entry of
a document being written (`Site.stories`, skipped when unchanged: a digest of
the entry and of everything the page depends on, kept in the store like the
documents'), and index.html once a publish has written the outputs. Story
pages are never deleted: a story pruned from the store keeps its page.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections import deque
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import jinja2
from lxml import etree
from markupsafe import Markup

from .. import PROJECT_URL, __version__
from ..config import Config, OutputConfig
from ..errors import ConfigError, PublishError
from ..models import StoryEntry, from_text
from .documents import ARCHIVE_DIR, MEDIA_TYPES, PAGE, Document
from .files import sync_folder, write_atomic
from .pageview import Language, When, entry_view, language, page_language, story_key, when
from .rendered import Rendered

STORIES_DIR = "stories"
#: Story pages one call may hand to a pool: below this, rendering them here is sooner; a task takes this many.
POOL_MIN_PAGES = 64
IN_FLIGHT = 4  # tasks a Site leaves in its pool: one more waits for the oldest, so memory stays bounded
STYLESHEET = "pages.css"
TEMPLATES = ("base.html", "macros.html", "index.html", "river.html", "story.html", STYLESHEET)
LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
ATOM_PUBLISHED = "{http://www.w3.org/2005/Atom}published"
_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "huge_tree": True}


@dataclass(frozen=True)
class Link:
    href: str
    type: str
    label: str
    title: str = ""


@dataclass(frozen=True)
class OutputView:
    title: str
    subtitle: str | None
    language: Language
    href: str
    newest: When | None
    subscribe: tuple[Link, ...]


def environment(config: Config) -> jinja2.Environment:
    """The packaged templates, each overridable by a file of the same name in `output.templates`."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("aggregator.output", "templates")]
    if config.templates is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(config.templates)))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True, trim_blocks=False,
                              keep_trailing_newline=True, auto_reload=False)


def check_templates(config: Config) -> list[str]:
    """Every template that does not compile, as FILE:LINE: output.templates: message (for `check`)."""
    env = environment(config)
    problems = []
    for name in sorted(set(env.list_templates()) | set(TEMPLATES)):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or (str(config.templates / name) if config.templates else name)
            problems.append(f"{where}:{exc.lineno}: output.templates: {name}: {exc.message}")
        except jinja2.TemplateError as exc:
            problems.append(f"{config.templates or name}:1: output.templates: {name}: {exc}")
    return problems


def raise_for_templates(config: Config) -> None:
    problems = check_templates(config)
    if problems:
        raise ConfigError(problems)


def theme_digest(config: Config) -> str:
    """What the operator's templates are: their names and bytes (the packaged ones are in Rendered's digest)."""
    digest = hashlib.blake2b(digest_size=16)
    if config.templates is not None:
        for path in sorted(p for p in config.templates.rglob("*") if p.is_file()):
            try:
                digest.update(path.relative_to(config.templates).as_posix().encode() + b"\0" + path.read_bytes())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


class Site:
    """One publish's pages: the template environment, and which story pages this publish already saw."""

    def __init__(self, config: Config, rendered: Rendered, pool: Executor | None = None):
        self.config = config
        self.rendered = rendered
        self.env = environment(config)
        self.theme = theme_digest(config)
        # index.html and the story pages belong to no one output: they speak the first one's language
        self.language = page_language(config.outputs[0].language if config.outputs else None)
        self._seen: set[Path] = set()  # story pages written or found unchanged by this publish
        self.pool = pool  # where many story pages at once are rendered and written (worker processes)
        # What a task in the pool is sent: rendering reads no source, and 10,000 of them pickled with every
        # task were most of a large first publish (the workers waited on this process's pickling).
        self.task_config = replace(config, sources=())
        self._pending: deque[tuple[Future, list[tuple[StoryEntry, Path, str]]]] = deque()  # (task, its pages)
        self._unsynced = False  # story pages the pool wrote since the folder was last flushed

    def format_key(self, fmt: str) -> str:
        """What Rendered digests as the format: for pages, the theme too."""
        return f"{fmt} {self.theme}" if fmt == PAGE else fmt

    # the river

    def river(self, document: Document, entries: list[StoryEntry]) -> bytes:
        output, page = document.output, document.page
        lang = page_language(output.language)
        root = "" if page is None else "../../"
        older = newer = current = None
        if page is None:
            older = f"{ARCHIVE_DIR}/{output.id}/{document.prev_archive}.html" if document.prev_archive else None
        else:
            older = f"{page - 1}.html" if page > 1 else None
            newer = f"{page + 1}.html" if document.full else f"../../{output.id}.html"
            current = f"../../{output.id}.html"
        views = [entry_view(e, self.config.date_format, lang.tag) for e in entries]
        return self._render("river.html", lang, document.title(), root, self._feeds(root, [output]),
                            output=output, archive=page, entries=views, older=older, newer=newer, current=current,
                            subscribe=self._subscribe(root, output))

    # story pages

    def stories(self, entries: list[StoryEntry]) -> list[Path]:
        """Write the page of each story whose page is missing or out of date; the paths rewritten."""
        directory = self.config.output_dir / STORIES_DIR
        todo = []
        for entry in entries:
            path = story_page(self.config, entry.uid)
            if path not in self._seen:
                self._seen.add(path)
                todo.append((entry, path))
        self.rendered.prefetch([path for _, path in todo])
        stale = []
        kind = f"story {self.theme} {self.language}"
        for entry, path in todo:
            pickled = pickle.dumps(entry, protocol=5)  # once: what the digest reads and what a worker is sent
            digest = self.rendered.digest_of(kind, pickled)
            if not self.rendered.unchanged(path, digest):
                stale.append((entry, path, digest, pickled))
        if self.pool is not None and len(stale) >= POOL_MIN_PAGES:
            for start in range(0, len(stale), POOL_MIN_PAGES):
                pages = stale[start:start + POOL_MIN_PAGES]
                self._pending.append((self.pool.submit(pickled_story_pages, self.task_config,
                                                       [(p[3], p[1]) for p in pages]), pages))
            return self._collect(IN_FLIGHT)
        written = story_pages(self.config, [p[:2] for p in stale], self)
        self._record(stale)
        if written:  # one flush for the folder, before the document linking these pages is written
            sync_folder(directory)
        return written

    def finish(self) -> list[Path]:
        """Wait for the story pages handed to the pool (before the documents linking them go in place);
        the paths rewritten."""
        written = self._collect(0)
        if self._unsynced:
            sync_folder(self.config.output_dir / STORIES_DIR)
            self._unsynced = False
        return written

    def abandon(self) -> None:
        """Stop waiting for the pool's story pages (a publish that failed): they are rendered again next time."""
        for future, _ in self._pending:
            future.cancel()
        self._pending.clear()

    def _collect(self, left: int) -> list[Path]:
        """Wait for the oldest tasks in the pool until `left` are; the paths they rewrote. A pool that broke
        (a worker killed) leaves its pages to be written here. Waiting bounds what this process holds."""
        written = []
        while len(self._pending) > left:
            future, pages = self._pending.popleft()
            try:
                paths = future.result()
            except BrokenProcessPool:
                paths = story_pages(self.config, [p[:2] for p in pages], self)
            written += paths
            self._unsynced |= bool(paths)
            self._record(pages)
        return written

    def _record(self, pages: list[tuple[StoryEntry, Path, str, bytes]]) -> None:
        for _, path, digest, _ in pages:
            self.rendered.done(path, digest)

    def story(self, entry: StoryEntry) -> bytes:
        lang = self.language
        view = entry_view(entry, self.config.date_format, lang.tag, content=True)
        view = view.with_content(Markup(view.content))
        title = f"{entry.title or '(untitled)'} — {entry.source.title}"
        return self._render("story.html", lang, title, "../", self._feeds("../", self.config.outputs, ("atom",)),
                            e=view, canonical=entry.link)

    # the index and the stylesheet

    def index(self) -> bytes:
        root = ""
        outputs = [self._output_view(o) for o in self.config.outputs]
        return self._render("index.html", self.language, "Feeds", root,
                            self._feeds(root, self.config.outputs, existing=True),
                            outputs=outputs)

    def stylesheet(self) -> bytes:
        return self._template(STYLESHEET).render().encode("utf-8")

    def _output_view(self, output: OutputConfig) -> OutputView:
        newest = newest_published(self.config.output_dir / f"{output.id}.atom")
        return OutputView(output.title, output.subtitle, language(output.language), f"{output.id}.html",
                          when(newest, self.config.date_format, self.language.tag) if newest else None,
                          self._subscribe("", output, existing=True))

    def _subscribe(self, root: str, output: OutputConfig, existing: bool = False) -> tuple[Link, ...]:
        """The output's current feeds (written by this publish; with `existing`, only those on disk now)."""
        return tuple(Link(root + f"{output.id}.{fmt}", MEDIA_TYPES[fmt], LABELS[fmt]) for fmt in output.formats
                     if not existing or (self.config.output_dir / f"{output.id}.{fmt}").is_file())

    def _feeds(self, root: str, outputs, formats: tuple[str, ...] | None = None, existing: bool = False) -> list[Link]:
        """Autodiscovery: the current feeds of these outputs (an archive page is no place to subscribe)."""
        return [Link(link.href, link.type, link.label, f"{output.title} ({link.label})")
                for output in outputs for link in self._subscribe(root, output, existing)
                if formats is None or link.label in (LABELS[f] for f in formats)]

    def _render(self, name: str, lang: Language, title: str, root: str, feeds: list[Link], **values) -> bytes:
        page = {"lang": lang.tag, "dir": lang.dir or "ltr", "title": title}
        try:
            text = self._template(name).render(page=page, root=root, feeds=feeds, generator=f"aggregator {__version__}",
                                               project_url=PROJECT_URL, **values)
        except jinja2.TemplateError as exc:
            raise PublishError(f"template {name} failed: {exc}; fix it in {self.config.templates or 'the package'} "
                               "(`aggregator check` compiles every template)") from exc
        return text.encode("utf-8")

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateError as exc:
            raise PublishError(f"template {name} cannot be loaded: {exc}; `aggregator check` says where") from exc



def story_pages(config: Config, pages: list[tuple[StoryEntry, Path]], site: Site | None = None) -> list[Path]:
    """Render and write each (entry, path) story page; the paths whose bytes changed. Called in a pool's worker
    process without `site`."""
    site = site or worker_site(config)
    return [path for entry, path in pages if write_atomic(path, site.story(entry), durable=False)]


def pickled_story_pages(config: Config, pages: list[tuple[bytes, Path]]) -> list[Path]:
    """story_pages of pickled entries, in a pool's worker: the main process pickles each entry once, for its
    digest, and sends those bytes (pickling every entry a second time for the pool was a sixth of its publish)."""
    return story_pages(config, [(pickle.loads(entry), path) for entry, path in pages])


@functools.lru_cache(maxsize=1)
def worker_site(config: Config) -> Site:
    """The Site a pool's worker process renders with: one per configuration, made once."""
    return Site(config, Rendered(None, config))


def story_page(config: Config, uid: str) -> Path:
    """Where the page of the story with this id is written (it stays there after the story is pruned)."""
    return config.output_dir / STORIES_DIR / f"{story_key(uid)}.html"


def newest_published(path: Path) -> datetime | None:
    """The first entry's `published` in an Atom document we wrote (entries are newest first); None without one."""
    try:
        for _, element in etree.iterparse(str(path), tag=ATOM_PUBLISHED, **_PARSER_OPTIONS):
            return from_text((element.text or "").strip() or None)
    except (OSError, etree.XMLSyntaxError, ValueError):
        return None
    return None
