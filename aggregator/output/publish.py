"""Publishing: every output's documents written from the store, each output's as one change on disk.

The stage's entry is `publish_outputs`. Each output has a current document
per format and, once entries fall out of it, numbered archive pages (RFC
5005) that archive.py plans; atom.py and jsonfeed.py render them, pages.py
renders each document's HTML page and the story pages of its entries,
journal.Publication puts them in place together, rendered.Rendered skips
those unchanged.
"""

from __future__ import annotations

from concurrent.futures import Executor
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
from .pages import STYLESHEET as PAGES_STYLESHEET, Site
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
    staged: list[tuple[Path, str]] = []  # (path, digest) recorded once in place
    full_pages = PendingIndex(archive_dir(config, output))  # indexed once in place
    written: list[Path] = []
    try:
        for page in archive.pages:
            document, page_entries = Document(output, page=page.number, full=page.full), list(page.entries)
            if PAGE in page.formats:
                written += site.stories(page_entries)
            for fmt in page.formats:
                _stage_document(config, document, fmt, page_entries, rendered, publication, staged, site)
            if page.index:
                full_pages.add(page.number, (e.uid for e in page_entries))
        current = Document(output, prev_archive=archive.newest)
        written += site.stories(entries)
        for fmt in formats_of(output):
            _stage_document(config, current, fmt, entries, rendered, publication, staged, site)
        written += site.finish()
    except BaseException:
        site.abandon()
        publication.abort()
        full_pages.discard()
        rendered.save()
        raise
    try:
        written += publication.commit()  # failing, it leaves the journal (if any) for the next publish to finish
        for path, digest in staged:
            rendered.done(path, digest)
        full_pages.commit()
    finally:
        full_pages.discard()
        rendered.save()
    return written


def _stage_document(config: Config, document: Document, fmt: str, entries: list[StoryEntry], rendered: Rendered,
                    publication: Publication, staged: list[tuple[Path, str]], site: Site) -> None:
    path = config.output_dir / document.name(fmt)
    digest = rendered.digest(document, site.format_key(fmt), entries)
    if rendered.unchanged(path, digest):
        return
    data = site.river(document, entries) if fmt == PAGE else render(config, document, fmt, entries)
    if publication.stage(path, data):
        staged.append((path, digest))
    else:  # the file holds these bytes already
        rendered.done(path, digest)


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


def publish_outputs(store: Store, config: Config, now: datetime | None = None,
                    only: set[str] | None = None, unless_unchanged: bool = False,
                    memory: PublishMemory | None = None, pool: Executor | None = None) -> list[Path]:
    """Render every output (or those named in `only`): all formats and archive pages; the files rewritten.

    One output that cannot be written (a full disk) does not stop the others:
    its old files stay, the failure is recorded for `status`, and a
    PublishError naming it is raised once every output has been tried. Hubs
    are pinged about each current document that changed. `unless_unchanged`:
    nothing is read when nothing publishing depends on changed since the last
    complete publish (selecting the stories of a large state costs seconds).
    `memory`: what a process that publishes again and again keeps between publishes. `pool`: worker
    processes that render and write story pages while this one renders the documents, when there are many
    (a first publish writes one for every story).
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
        if only is not None and output.id not in only:
            continue
        try:
            journal.finish(config.output_dir, output.id)  # a publish of it that was interrupted, first
            entries, update = archive.prepare(store, config, output, now, memory, rendered.selection())
            written += publish_output(config, output, entries, update, rendered, site)
            if update.record is not None:
                store.record_publication(output.id, update.record, update.archived, update.consumed)
        except PublishError as exc:
            errors.append(str(exc))
            _record_publish(store, output.id, str(exc), now)
            continue
        if output.id in failing:
            _record_publish(store, output.id, None, now)
    try:  # last: it links the outputs' files, and shows each one's newest story
        written += _write(config.output_dir / "index.html", site.index())
    except PublishError as exc:
        errors.append(str(exc))
    if config.hubs:
        changed = {path.relative_to(config.output_dir).as_posix() for path in written}
        topics = [config.base_url + f"{o.id}.{fmt}" for o in config.outputs for fmt in o.formats
                  if f"{o.id}.{fmt}" in changed]
        websub.ping(config.hubs, topics)
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
