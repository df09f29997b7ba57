"""Publishing: every output's documents written from the store, each output's as one change on disk.

The stage's entry is `publish_outputs`. Each output has a current document
per format and, once entries fall out of it, numbered archive pages (RFC
5005) that archive.py plans; atom.py and jsonfeed.py render them, pages.py
renders each document's HTML page and the story pages of its entries,
journal.Publication puts them in place together, rendered.Rendered skips
those unchanged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from ..config import Config, OutputConfig
from ..errors import PublishError, StoreError
from ..models import StoryEntry
from ..store import Store
from . import archive, journal, websub
from .archive import ArchiveUpdate, PublishMemory, archive_dir
from .atom import render
from .documents import PAGE, STYLESHEET, Document, formats_of
from .files import write_atomic
from .journal import Publication
from .opml import outputs_opml
from .pageindex import PendingIndex
from .pages import IN_FLIGHT, STYLESHEET as PAGES_STYLESHEET, Site, worker_site
from .rendered import Rendered


def publish_output(config: Config, output: OutputConfig, entries: list[StoryEntry],
                   archive: ArchiveUpdate | None = None, rendered: Rendered | None = None,
                   site: Site | None = None) -> list[Path]:
    """Write every format of one output and its HTML pages as one change on disk; the paths actually rewritten.

    Archive pages and current documents (feeds and HTML pages alike) are
    staged first and then put in place together (journal.Publication): killed
    at any moment, the publish is either not done at all or finished by the
    next one, so every story is in exactly one document of each format. A
    document's story pages are written before it, so its links always lead
    somewhere. With `rendered`, documents unchanged since they were last
    written are not rendered; a document rendered to the bytes its file
    already holds is not rewritten.
    """
    archive = archive or ArchiveUpdate(None)
    rendered = rendered or Rendered(None, config)
    site = site or Site(config, rendered)
    publication = Publication(config.output_dir, output.id)
    staging = _Staging(config, rendered, site, publication)
    full_pages = PendingIndex(archive_dir(config, output))  # indexed once in place
    written: list[Path] = []
    try:
        for count, page in enumerate(archive.pages, 1):
            document, page_entries = Document(output, page=page.number, full=page.full), list(page.entries)
            if PAGE in page.formats:
                written += site.stories(page_entries)
            staging.add(document, page.formats, page_entries, elsewhere=count >= POOL_MIN_ARCHIVE_PAGES)
            if page.index:
                full_pages.add(page.number, (e.uid for e in page_entries))
        current = Document(output, prev_archive=archive.newest)
        written += site.stories(entries)
        staging.add(current, formats_of(output), entries)
        staging.finish()
        written += site.finish()
    except BaseException:
        staging.abandon()
        site.abandon()
        publication.abort()
        full_pages.discard()
        rendered.save()
        raise
    try:
        written += publication.commit()  # failing, it leaves the journal (if any) for the next publish to finish
        for path, digest in staging.staged:
            rendered.done(path, digest)
        full_pages.commit()
    finally:
        full_pages.discard()
        rendered.save()
    return written


#: From the how-manieth archive page of one publish (a first publish, or one catching up) documents are rendered
#: in the site's pool, if it has one.
POOL_MIN_ARCHIVE_PAGES = 2
WORKER_MODULE = __name__  # what a pool's workers import to render documents and story pages
Pinger = Callable[[tuple[str, ...], list[str]], object]  # (hubs, topics): tells the hubs those changed


class _Staging:
    """One output's documents rendered (here, or in the site's pool) and staged as each is done."""

    def __init__(self, config: Config, rendered: Rendered, site: Site, publication: Publication):
        self.config, self.rendered, self.site, self.publication = config, rendered, site, publication
        self.staged: list[tuple[Path, str]] = []  # (path, digest) recorded once in place
        self._pending: deque[tuple[list[tuple[Path, str, str]], Document, list[StoryEntry], Future]] = deque()

    def add(self, document: Document, formats, entries: list[StoryEntry], elsewhere: bool = False) -> None:
        """Render and stage the formats of `document` whose files are out of date; `elsewhere`: in the pool."""
        todo = []
        for fmt in formats:
            path = self.config.output_dir / document.name(fmt)
            digest = self.rendered.digest(document, self.site.format_key(fmt), entries)
            if not self.rendered.unchanged(path, digest):
                todo.append((path, digest, fmt))
        if not todo:
            return
        formats = [fmt for _, _, fmt in todo]
        if not elsewhere or self.site.pool is None:
            self._stage(todo, [_render(self.site, document, fmt, entries) for fmt in formats])
            return
        future = self.site.pool.submit(render_documents, self.site.task_config, document, formats, entries)
        self._pending.append((todo, document, entries, future))
        while len(self._pending) > IN_FLIGHT:
            self._wait()

    def finish(self) -> None:
        while self._pending:
            self._wait()

    def abandon(self) -> None:
        for *_, future in self._pending:
            future.cancel()
        self._pending.clear()

    def _wait(self) -> None:
        todo, document, entries, future = self._pending.popleft()
        try:
            data = future.result()
        except BrokenProcessPool:  # a worker was killed: this document is rendered here
            data = [_render(self.site, document, fmt, entries) for _, _, fmt in todo]
        self._stage(todo, data)

    def _stage(self, todo: list[tuple[Path, str, str]], data: list[bytes]) -> None:
        for (path, digest, _), document in zip(todo, data):
            if self.publication.stage(path, document):
                self.staged.append((path, digest))
            else:  # the file holds these bytes already
                self.rendered.done(path, digest)


def render_documents(config: Config, document: Document, formats: list[str], entries: list[StoryEntry]) -> list[bytes]:
    """Each of these formats of one document, as the bytes to write (in a pool's worker process)."""
    site = worker_site(config)
    return [_render(site, document, fmt, entries) for fmt in formats]


def _render(site: Site, document: Document, fmt: str, entries: list[StoryEntry]) -> bytes:
    return site.river(document, entries) if fmt == PAGE else render(site.config, document, fmt, entries)


def finish_interrupted(config: Config) -> list[Path]:
    """Before anything else, a command that publishes completes the publishes a crash interrupted."""
    return journal.finish_all(config.output_dir)


def stylesheet_bytes() -> bytes:
    return resources.files(__package__).joinpath(STYLESHEET).read_bytes()


def publish_site(config: Config, site: Site | None = None) -> list[Path]:
    """The files shared by every output: the stylesheets (feeds', pages') and index.opml listing the outputs."""
    written = []
    site = site or Site(config, Rendered(None, config))
    for name, data in ((STYLESHEET, stylesheet_bytes()), (PAGES_STYLESHEET, site.stylesheet()),
                       ("index.opml", outputs_opml(config))):
        path = config.output_dir / name
        if write_atomic(path, data):
            written.append(path)
    return written


def _publish_one(store: Store, config: Config, output: OutputConfig, now: datetime | None, memory: PublishMemory,
                 rendered: Rendered, site: Site, failing: dict) -> list[Path]:
    """One output's files and its publication record; a PublishError is recorded for `status`, then raised."""
    try:
        journal.finish(config.output_dir, output.id)  # a publish of it that was interrupted, first
        entries, update = archive.prepare(store, config, output, now, memory, rendered.selection())
        written = publish_output(config, output, entries, update, rendered, site)
        if update.record is not None:
            store.record_publication(output.id, update.record, update.archived, update.consumed)
    except PublishError as exc:
        _record_publish(store, output.id, str(exc), now)
        raise
    if output.id in failing:
        _record_publish(store, output.id, None, now)
    return written


def _ping_hubs(config: Config, written: list[Path], pinger: Pinger) -> None:
    """Tell the hubs about each current document among the files written."""
    changed = {path.relative_to(config.output_dir).as_posix() for path in written}
    topics = [config.base_url + f"{o.id}.{fmt}" for o in config.outputs for fmt in o.formats
              if f"{o.id}.{fmt}" in changed]
    if topics:
        pinger(config.hubs, topics)


def publish_outputs(store: Store, config: Config, now: datetime | None = None,
                    only: set[str] | None = None, unless_unchanged: bool = False,
                    memory: PublishMemory | None = None, pool: Executor | None = None,
                    pinger: Pinger = websub.ping) -> list[Path]:
    """Render every output (or those named in `only`): all formats and archive pages; the files rewritten.

    One output that cannot be written (a full disk) does not stop the others:
    its old files stay, the failure is recorded for `status`, and a
    PublishError naming it is raised once every output has been tried. Hubs
    are pinged about each current document that changed. `unless_unchanged`:
    nothing is read when nothing publishing depends on changed since the last
    complete publish (selecting the stories of a large state costs seconds).
    `memory`: what a process that publishes again and again keeps between publishes. `pool`: worker
    processes that render and write story pages while this one renders the documents, when there are many
    (a first publish writes one for every story). `pinger`: what tells the hubs (websub.ping, or a daemon's
    way of doing it from the side, so that a hub that does not answer holds up no publish).
    """
    memory = memory or PublishMemory()
    written, errors = [], []
    rendered = Rendered(store, config)
    inputs = rendered.inputs()  # first: a poll committing while this publish reads counts as a change next time
    if unless_unchanged and rendered.nothing_to_publish(config, inputs, store.published_inputs()):
        return []
    site = Site(config, rendered, pool)
    try:
        written += publish_site(config, site)
    except PublishError as exc:
        errors.append(str(exc))
    failing = store.output_failures()
    for output in config.outputs:
        if only is None or output.id in only:
            try:
                written += _publish_one(store, config, output, now, memory, rendered, site, failing)
            except PublishError as exc:
                errors.append(str(exc))
    try:  # last: it links the outputs' files, and shows each one's newest story
        written += _write(config.output_dir / "index.html", site.index())
    except PublishError as exc:
        errors.append(str(exc))
    if config.hubs:
        _ping_hubs(config, written, pinger)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PublishError(errors[0].removeprefix("publish: ") + more)
    if only is None:
        store.set_published_inputs(inputs)
    return written


def _write(path: Path, data: bytes) -> list[Path]:
    return [path] if write_atomic(path, data) else []


def _record_publish(store: Store, output_id: str, error: str | None, now: datetime | None) -> None:
    """Best effort: on a really full disk the store cannot take the note either; the raised error still says it."""
    try:
        store.record_publish(output_id, error, now or datetime.now(timezone.utc))
    except StoreError:
        pass
