"""OPML: subscription lists in (`opml import`), our sources and outputs out (`opml export`, index.opml).

Import reads any OPML 1.0/2.0 file a feed reader exports: every outline with
an xmlUrl is a feed; the folders it sits in and its `category` attribute
become tags. Feeds already configured (same canonical URL) and repeats inside
the file are skipped, and so are `file:` outlines unless the operator allows
them: a list from elsewhere must not make the aggregator read local files. Export writes OPML 2.0 with the same attributes, so an
export imports back to the same sources.
"""

from __future__ import annotations

import io
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree
from ruamel.yaml import YAML

from ..config import Config, load_config
from ..dedup.links import canonical_link
from ..errors import AggregatorError, ConfigError
from ..redaction import redact
from .files import write_atomic

SCHEMES = ("http", "https", "file")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=False)


class OpmlError(AggregatorError):
    """An OPML file that cannot be read or is not OPML."""

    stage = "opml"


@dataclass(frozen=True)
class Outline:
    """One feed of a subscription list."""

    title: str
    xml_url: str
    html_url: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportPlan:
    """The sources to add, and why other outlines were left out."""

    sources: tuple[dict, ...]
    skipped: tuple[str, ...] = field(default=())


def read_outlines(data: bytes, name: str = "OPML file") -> list[Outline]:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"{name} is not well-formed XML ({exc}); export it again from your feed reader") from None
    if root.tag != "opml" or root.find("body") is None:
        raise OpmlError(f"{name} is not OPML (its root is <{root.tag}>, with no <body>)")
    outlines: list[Outline] = []
    _walk(root.find("body"), (), outlines)
    return outlines


def _walk(element, folders: tuple[str, ...], found: list[Outline]) -> None:
    for child in element.iterfind("outline"):
        text = (child.get("title") or child.get("text") or "").strip()
        url = (child.get("xmlUrl") or child.get("xmlurl") or "").strip()
        if url:
            tags = [*folders, *_category_tags(child.get("category"))]
            found.append(Outline(text, url, (child.get("htmlUrl") or "").strip() or None,
                                 tuple(dict.fromkeys(t for t in tags if t))))
        _walk(child, (*folders, slug(text)) if not url and text else folders, found)


def _category_tags(category: str | None) -> list[str]:
    """OPML 2.0 `category`: comma-separated slash paths; each path's last step is a tag."""
    tags = []
    for path in (category or "").split(","):
        steps = [s for s in path.strip().split("/") if s.strip()]
        if steps:
            tags.append(slug(steps[-1]))
    return tags


def slug(text: str) -> str:
    """A config id: [a-z0-9_-] only, from any title."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:40].strip("-")


def plan_import(outlines: list[Outline], config: Config, allow_files: bool = False) -> ImportPlan:
    """Pure: the new sources, with ids unique against the config and each other.

    A `file:` outline is skipped unless `allow_files`: it names a file on this
    machine (`file:///etc/passwd`), which an OPML file from elsewhere has no say over.
    """
    taken = {s.id for s in config.sources}
    known = {canonical_link(s.url) for s in config.sources}
    sources, skipped, listed = [], [], set()
    for outline in outlines:
        scheme = urlsplit(outline.xml_url).scheme.lower()
        if scheme not in SCHEMES:
            skipped.append(f"{outline.xml_url}: not an http, https or file URL")
            continue
        if scheme == "file" and not allow_files:
            skipped.append(f"{outline.xml_url}: a local file, not imported (--allow-files takes file: outlines)")
            continue
        key = canonical_link(outline.xml_url)
        if key in known or key in listed:
            skipped.append(f"{outline.xml_url}: " + ("already a source" if key in known else "listed twice"))
            continue
        listed.add(key)
        base = slug(outline.title) or slug(urlsplit(outline.xml_url).hostname or "") or "source"
        source_id, n = base, 2
        while source_id in taken:
            source_id, n = f"{base}-{n}", n + 1
        taken.add(source_id)
        source = {"id": source_id, "url": outline.xml_url}
        if outline.title:
            source["title"] = outline.title
        if outline.tags:
            source["tags"] = list(outline.tags)
        sources.append(source)
    return ImportPlan(tuple(sources), tuple(skipped))


def sources_yaml(sources: tuple[dict, ...] | list[dict]) -> str:
    text = io.StringIO()
    _yaml().dump({"sources": [dict(s) for s in sources]}, text)
    return text.getvalue()


def write_sources(config_path: Path, sources: tuple[dict, ...]) -> None:
    """Append sources to the config file, keeping its comments; the result must load before it replaces the file."""
    yaml = _yaml()
    try:
        document = yaml.load(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OpmlError(f"cannot read {config_path}: {exc.strerror}") from exc
    if document.get("sources") is None:
        document["sources"] = []
    document["sources"].extend(dict(s) for s in sources)
    text = io.StringIO()
    yaml.dump(document, text)
    with tempfile.NamedTemporaryFile("w", dir=config_path.parent, suffix=".yaml", encoding="utf-8") as trial:
        trial.write(text.getvalue())
        trial.flush()
        try:
            load_config(Path(trial.name))
        except ConfigError as exc:
            raise OpmlError(f"not written: {config_path} would become invalid:\n{exc}") from None
    write_atomic(config_path, text.getvalue().encode("utf-8"))


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def sources_opml(config: Config, site_links: dict[str, str] | None = None,
                 urls: dict[str, str] | None = None, credentials: bool = False) -> bytes:
    """The configured sources as OPML 2.0; site links and adopted URLs come from the store when known.

    An OPML file is made to be handed on (a blogroll, another reader), so credentials in URLs are masked
    (redaction.redact) unless `credentials`: the operator's own backup or move to another reader."""
    site_links, urls = site_links or {}, urls or {}
    shown = (lambda url: url) if credentials else redact
    root, body = _document(f"Sources of {config.path.name}")
    for source in config.sources:
        attributes = {"type": "rss", "text": source.title or source.id, "title": source.title or source.id,
                      "xmlUrl": shown(urls.get(source.id, source.url))}
        if site_links.get(source.id):
            attributes["htmlUrl"] = shown(site_links[source.id])
        if source.tags:
            attributes["category"] = ",".join(f"/{tag}" for tag in source.tags)
        etree.SubElement(body, "outline", attributes)
    return _bytes(root)


def outputs_opml(config: Config) -> bytes:
    """index.opml: every output's Atom document, so a reader subscribes to them all in one step; each outline's
    htmlUrl is the output's page (SPEC §4.1)."""
    root, body = _document(f"Feeds at {config.base_url}")
    for output in config.outputs:
        attributes = {"type": "rss", "text": output.title, "title": output.title,
                      "xmlUrl": f"{config.base_url}{output.id}.atom", "htmlUrl": f"{config.base_url}{output.id}.html"}
        if output.subtitle:
            attributes["description"] = output.subtitle
        if output.language:
            attributes["language"] = output.language
        etree.SubElement(body, "outline", attributes)
    return _bytes(root)


def _document(title: str):
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    return root, etree.SubElement(root, "body")


def _bytes(root) -> bytes:
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
