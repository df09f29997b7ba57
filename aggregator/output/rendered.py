"""What each published file was rendered from, kept in the store, so an unchanged document is not rendered again."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from lxml import etree

from ..config import Config
from ..models import StoryEntry
from ..store import Store
from .documents import ARCHIVE_DIR, STYLESHEET, Document, formats_of

SITE_FILES = (STYLESHEET, "index.opml", "pages.css", "index.html")  # written by every publish, for every output


class Rendered:
    """What each published file was rendered from, kept in the store, so an unchanged document is not rendered again.

    Rendering, not writing, is the cost of a large document (write_atomic
    already leaves identical bytes alone, but only after they were rendered).
    A document is skipped when the digest of everything its bytes depend on
    (this code and the libraries that shape them, the configuration, the
    document's place, its entries) and its file (size, times, inode: nobody
    touched it since) are what they were when it was last written. Any doubt
    renders again; the records are saved once per output, and losing them
    only costs a render.
    """

    def __init__(self, store: Store | None, config: Config):
        self._store = store
        settings = replace(config, outputs=tuple(replace(o, include=_texts(o.include), exclude=_texts(o.exclude))
                                                 for o in config.outputs))
        # (patterns as their text: a compiled pattern's repr changes between runs)
        self._settings = hashlib.blake2b(_renderer() + repr(settings).encode(), digest_size=20).digest()
        self._done: list[tuple[str, str, str]] = []
        self._known: dict[str, tuple[str, str] | None] = {}  # records looked up at once (story pages)
        self._entries: tuple[list[StoryEntry] | None, bytes] = (None, b"")  # the last list digested, for each format

    def digest(self, document: Document, fmt: str, entries: list[StoryEntry]) -> str:
        if entries is not self._entries[0]:  # the same values pickle to the same bytes
            sink = _HashSink()
            pickle.Pickler(sink, protocol=5).dump(entries)  # streamed: a large document's text is not copied
            self._entries = (entries, sink.digest.digest())
        digest = hashlib.blake2b(self._settings + self._entries[1], digest_size=20)
        digest.update(repr((fmt, document.output.id, document.page, document.full, document.prev_archive)).encode())
        return digest.hexdigest()

    def selection(self) -> str:
        """A digest of what decides which stories the outputs show and how (this code, the config): a
        publication recorded under another one is not trusted to say what the outputs hold."""
        return self._settings.hex()

    def digest_of(self, kind: str, pickled: bytes) -> str:
        """A digest of one pickled value (a story page's entry) with everything rendering depends on."""
        digest = hashlib.blake2b(self._settings + kind.encode(), digest_size=20)
        digest.update(pickled)
        return digest.hexdigest()

    def prefetch(self, paths: list[Path]) -> None:
        """Look up the records of many files in a few queries, for `unchanged` to find (story pages)."""
        if self._store is None or not paths:
            return
        names = [str(path) for path in paths]
        found = self._store.rendered_many(names)
        for name in names:
            self._known[name] = found.get(name)

    def inputs(self) -> str:
        """A digest of what every document depends on besides time: this code, the config, and how many new
        bodies each source has had (every change to the stories comes with one, or with an operator's correction)
        and where it lives."""
        digest = hashlib.blake2b(self._settings, digest_size=20)
        digest.update(repr(self._store.body_changes()).encode())
        digest.update(repr(self._store.corrections()).encode())  # an operator's merge or unmerge changes stories too
        return digest.hexdigest()

    def nothing_to_publish(self, config: Config, inputs: str, published_inputs: str | None) -> bool:
        """Whether publishing everything again would write nothing: the inputs of the last complete publish,
        no output that ages stories out (`since`), and every file of every output as it was written."""
        if inputs != published_inputs or any(o.since for o in config.outputs):
            return False
        files = self._store.rendered_files()
        current = {str(config.output_dir / Document(o).name(fmt)) for o in config.outputs for fmt in formats_of(o)}
        pages = tuple(f"{config.output_dir / ARCHIVE_DIR / o.id}{os.sep}" for o in config.outputs)
        return (current <= files.keys()
                and all(_signature(Path(path)) == signature for path, signature in files.items()
                        if path in current or path.startswith(pages))
                and all((config.output_dir / name).is_file() for name in SITE_FILES))

    def unchanged(self, path: Path, digest: str) -> bool:
        if self._store is None:
            return False
        signature = _signature(path)
        if not signature:
            return False
        name = str(path)
        record = self._known[name] if name in self._known else self._store.rendered(name)
        return record == (digest, signature)

    def done(self, path: Path, digest: str) -> None:
        record = (str(path), digest, _signature(path))
        self._done.append(record)
        if record[0] in self._known:
            self._known[record[0]] = record[1:]

    def save(self) -> None:
        if self._store is not None and self._done:
            self._store.record_rendered(self._done)
        self._done = []


class _HashSink:
    """A write-only file that hashes what it is given."""

    def __init__(self):
        self.digest = hashlib.blake2b(digest_size=20)
        self.write = self.digest.update


def _texts(patterns) -> tuple[str, ...]:
    return tuple(p.text for p in patterns)


def _signature(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


#: What the package's rendering depends on besides its Python code: the stylesheet, templates, static files.
RENDERING_FILES = (".py", ".xsl", ".html", ".css", ".txt")


@functools.cache
def _renderer() -> bytes:
    """This package's code and the versions of what renders: an upgrade renders every document once more."""
    digest = hashlib.blake2b(digest_size=20)
    package = Path(__file__).resolve().parent.parent  # the whole aggregator package, every stage
    for path in sorted(p for p in package.rglob("*") if p.suffix in RENDERING_FILES and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    versions = [sys.version, etree.LXML_VERSION, etree.LIBXML_VERSION, *(metadata.version(d) for d in ("feedgen", "nh3"))]
    digest.update(repr(versions).encode())
    return digest.digest()
