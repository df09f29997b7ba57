"""YAML configuration → frozen objects, every problem reported as FILE:LINE: key.path: message.

The whole file is checked before anything runs, and all problems are collected
rather than stopping at the first, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from ..errors import ConfigError
from ..redaction import redact
from .filters import Pattern, parse_pattern
from .model import (DEFAULT_ATTRIBUTION, DEFAULT_DATE_FORMAT, DEFAULT_RETENTION, Config, OutputConfig, SourceConfig,
                    default_config_path)
from .values import (Reader, _attribution, _boolean, _date_format, _formats, _http_url, _identifier, _integer, _keep,
                     _listen_address, _positive_integer, _public_url, _string, _string_list, parse_duration, parse_size)


class _Loader:
    SOURCE_KEYS = {"id", "url", "title", "tags", "interval", "timeout", "max_bytes", "max_entries", "priority", "enabled"}
    OUTPUT_KEYS = {
        "id", "title", "subtitle", "sources", "tags", "include", "exclude", "limit", "formats",
        "since", "languages", "attribution", "icon", "logo", "author", "rights", "language",
    }
    TOP_KEYS = {"state", "output", "defaults", "sources", "outputs", "dedup", "server", "websub", "metrics", "retention"}

    def __init__(self, path: Path, document: Any):
        self.path = path
        self.base_dir = path.resolve().parent
        self.doc = document
        self.r = Reader(path)

    def resolve_path(self, value: Any) -> str:
        text = os.path.expanduser(_string(value))
        if "://" in text:
            return text
        return str((self.base_dir / text).resolve())

    def template_dir(self, value: Any) -> str:
        """`output.templates`: an existing folder of HTML templates overriding the packaged ones."""
        path = self.resolve_path(value)
        if "://" in path or not Path(path).is_dir():
            raise ValueError(f"{_string(value)!r} is not a folder; name a folder of templates "
                             "(relative to this file) or remove the key to use the packaged ones")
        return path

    def source_url(self, value: Any) -> str:
        """The URL to read: http(s) as written; a file: URL as the file:///… URI of the file it names, its
        path percent-decoded once (`file:feeds/local%20feed.atom` is the file `feeds/local feed.atom`
        beside the config) and re-encoded by as_uri, so that reading decodes it once more into that path."""
        text = _string(value).strip()
        parts = urlsplit(text)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ValueError(f"{redact(text)!r} names another machine; a file: URL is file:///absolute/path "
                                 "or file:path/relative/to/this/config")
            if parts.query or parts.fragment or text.endswith(("?", "#")):
                raise ValueError(f"{redact(text)!r}: a file: URL has no query or fragment; write '?' as %3F "
                                 "and '#' as %23 in a file name")
            return (self.base_dir / unquote(parts.path)).resolve().as_uri()
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{redact(text)!r} is not an http, https or file URL")
        if not parts.hostname:
            raise ValueError(f"{redact(text)!r} has no host; write http(s)://host[:port]/path")
        try:
            port = parts.port
        except ValueError:  # out of range, or not a number
            port = 0
        if port == 0:
            raise ValueError(f"{redact(text)!r} has no valid port (1-65535); write host:port or leave the port out")
        return text

    def load(self) -> Config:
        r = self.r
        top = r.mapping(self.doc, "", self.TOP_KEYS, 1)
        state = r.value(top, "state", "", self.resolve_path, str(self.base_dir / "aggregator.db"))
        output = r.mapping(top.get("output"), "output", {"dir", "base_url", "templates", "date_format"},
                           r.line_of(top, "output"))
        output_dir = r.value(output, "dir", "output", self.resolve_path, str(self.base_dir / "feeds"))
        base_url = r.value(output, "base_url", "output", _http_url, "http://127.0.0.1:8080/")
        if not base_url.endswith("/"):
            base_url += "/"
        templates = r.value(output, "templates", "output", self.template_dir, None)
        date_format = r.value(output, "date_format", "output", _date_format, DEFAULT_DATE_FORMAT)
        defaults = self.source_settings(
            r.mapping(top.get("defaults"), "defaults", self.SOURCE_KEYS - {"id", "url", "title"},
                      r.line_of(top, "defaults")),
            "defaults", SourceConfig("defaults", "", 0),
        )
        sources = self.sources(top, defaults)
        outputs = self.outputs(top, {s.id for s in sources})
        dedup = r.mapping(top.get("dedup"), "dedup", {"window"}, r.line_of(top, "dedup"))
        window = r.value(dedup, "window", "dedup", parse_duration, 14 * 86400.0)
        server = r.mapping(top.get("server"), "server", {"listen", "public_url", "stuck_after"},
                           r.line_of(top, "server"))
        listen = r.value(server, "listen", "server", _listen_address, None)
        websub = r.mapping(top.get("websub"), "websub", {"hubs", "subscribe", "lease", "safety_interval"},
                           r.line_of(top, "websub"))
        hubs = r.value(websub, "hubs", "websub", lambda v: tuple(_http_url(h) for h in _string_list(v)), ())
        operating = self.operating(top, server, websub, listen)
        retention = r.mapping(top.get("retention"), "retention", {"keep"}, r.line_of(top, "retention"))
        keep = r.value(retention, "keep", "retention", _keep, DEFAULT_RETENTION)
        if r.problems:
            raise ConfigError(r.problems)
        return Config(
            path=self.path, state=state, output_dir=Path(output_dir), base_url=base_url,
            sources=sources, outputs=outputs, dedup_window=window, listen=listen, hubs=hubs, **operating,
            templates=Path(templates) if templates else None, date_format=date_format, retention=keep,
        )

    def operating(self, top: dict, server: dict, websub: dict, listen: tuple | None) -> dict:
        """The daemon's push, health and metrics settings (server.public_url and .stuck_after, websub.subscribe,
        .lease and .safety_interval, metrics.per_source)."""
        r, v = self.r, self.r.value
        metrics = r.mapping(top.get("metrics"), "metrics", {"per_source"}, r.line_of(top, "metrics"))
        settings = {
            "public_url": v(server, "public_url", "server", _public_url, None),
            "stuck_after": v(server, "stuck_after", "server", parse_duration, 600.0),
            "subscribe": v(websub, "subscribe", "websub", _boolean, False),
            "push_lease": v(websub, "lease", "websub", parse_duration, 10 * 86400.0),
            "push_safety_interval": v(websub, "safety_interval", "websub", parse_duration, 6 * 3600.0),
            "metrics_per_source": v(metrics, "per_source", "metrics", _boolean, False),
        }
        if settings["subscribe"] and (listen is None or settings["public_url"] is None):
            r.problem(r.line_of(websub, "subscribe"), "websub.subscribe",
                      "needs server.listen and server.public_url (the address at which hubs reach server.listen)")
        return settings

    def source_settings(self, node: dict, key_path: str, base: SourceConfig) -> dict:
        """The per-source keys that may also be set in `defaults`, converted."""
        v = self.r.value
        return {
            "tags": v(node, "tags", key_path, _string_list, base.tags),
            "interval": v(node, "interval", key_path, parse_duration, base.interval),
            "timeout": v(node, "timeout", key_path, parse_duration, base.timeout),
            "max_bytes": v(node, "max_bytes", key_path, parse_size, base.max_bytes),
            "max_entries": v(node, "max_entries", key_path, _positive_integer, base.max_entries),
            "priority": v(node, "priority", key_path, _integer, base.priority),
            "enabled": v(node, "enabled", key_path, _boolean, base.enabled),
        }

    def sources(self, top: dict, defaults: dict) -> tuple[SourceConfig, ...]:
        r = self.r
        nodes = top.get("sources") or []
        if not isinstance(nodes, list):
            r.problem(r.line_of(top, "sources"), "sources", "expected a list of sources")
            return ()
        result, seen = [], {}
        base = SourceConfig("defaults", "", 0, **defaults)
        for index, node in enumerate(nodes):
            key_path = f"sources[{index}]"
            node = r.mapping(node, key_path, self.SOURCE_KEYS, r.line_of(nodes, index))
            if not node:
                continue
            for required in ("id", "url"):
                if node.get(required) is None:
                    r.problem(r.line_of(nodes, index), key_path, f"missing required key {required!r}")
            source_id = r.value(node, "id", key_path, _identifier, None)
            url = r.value(node, "url", key_path, self.source_url, None)
            written = _string(node["url"]).strip() if url else None
            title = r.value(node, "title", key_path, _string, None)
            settings = self.source_settings(node, key_path, base)
            if source_id in seen:
                r.problem(r.line_of(node, "id"), f"{key_path}.id",
                          f"duplicate source id {source_id!r} (first at line {seen[source_id]})")
            elif source_id:
                seen[source_id] = r.line_of(node, "id")
            if source_id and url:
                result.append(SourceConfig(source_id, url, index, title, **settings,
                                           written_url=written if written != url else None))
        return tuple(result)

    def outputs(self, top: dict, source_ids: set[str]) -> tuple[OutputConfig, ...]:
        r = self.r
        nodes = top.get("outputs") or []
        if not isinstance(nodes, list):
            r.problem(r.line_of(top, "outputs"), "outputs", "expected a list of outputs")
            return ()
        result, seen = [], {}
        for index, node in enumerate(nodes):
            key_path = f"outputs[{index}]"
            node = r.mapping(node, key_path, self.OUTPUT_KEYS, r.line_of(nodes, index))
            if not node:
                continue
            if node.get("id") is None:
                r.problem(r.line_of(nodes, index), key_path, "missing required key 'id'")
            output_id = r.value(node, "id", key_path, _identifier, None)
            if output_id in seen:
                r.problem(r.line_of(node, "id"), f"{key_path}.id",
                          f"duplicate output id {output_id!r} (first at line {seen[output_id]})")
            elif output_id:
                seen[output_id] = r.line_of(node, "id")
            output = self.output(node, key_path, output_id or "", source_ids)
            if output_id:
                result.append(output)
        return tuple(result)

    def output(self, node: dict, key_path: str, output_id: str, source_ids: set[str]) -> OutputConfig:
        r, v = self.r, self.r.value
        sources = v(node, "sources", key_path, _string_list, ())
        for i, source_id in enumerate(sources):
            if source_id not in source_ids:
                line = r.line_of(node["sources"], i) if isinstance(node["sources"], list) else r.line_of(node, "sources")
                r.problem(line, f"{key_path}.sources[{i}]", f"unknown source {source_id!r}")
        formats = v(node, "formats", key_path, _formats, ("atom",))
        return OutputConfig(
            id=output_id,
            title=v(node, "title", key_path, _string, output_id),
            subtitle=v(node, "subtitle", key_path, _string, None),
            sources=sources,
            tags=v(node, "tags", key_path, _string_list, ()),
            include=self.patterns(node, "include", key_path),
            exclude=self.patterns(node, "exclude", key_path),
            limit=v(node, "limit", key_path, _positive_integer, 100),
            formats=formats,
            since=v(node, "since", key_path, parse_duration, None),
            languages=v(node, "languages", key_path, lambda x: tuple(s.lower() for s in _string_list(x)), ()),
            attribution=v(node, "attribution", key_path, _attribution, DEFAULT_ATTRIBUTION),
            icon=v(node, "icon", key_path, _string, None),
            logo=v(node, "logo", key_path, _string, None),
            author=v(node, "author", key_path, _string, None),
            rights=v(node, "rights", key_path, _string, None),
            language=v(node, "language", key_path, _string, None),
        )

    def patterns(self, node: dict, key: str, key_path: str) -> tuple[Pattern, ...]:
        values = self.r.value(node, key, key_path, _string_list, ())
        result = []
        for i, text in enumerate(values):
            try:
                result.append(parse_pattern(text))
            except ValueError as exc:
                line = self.r.line_of(node[key], i) if isinstance(node[key], list) else self.r.line_of(node, key)
                self.r.problem(line, f"{key_path}.{key}[{i}]", str(exc))
        return tuple(result)


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the whole file; raise ConfigError listing every problem."""
    path = Path(path) if path is not None else default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1: (file): not found; pass -c CONFIG or set AGGREGATOR_CONFIG"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}:1: (file): cannot read: {exc}"]) from None
    try:  # libyaml's parser reads 10,000 sources in a tenth of the time; only a config with problems
        return _Loader(path, YAML(typ="safe").load(text)).load()  # needs the round-trip one's line numbers
    except Exception:  # noqa: BLE001 - whatever it is, the round-trip reader below reports it with its line
        pass
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{path}:{line}: (yaml): {message.strip() or 'invalid YAML'}"]) from None
    return _Loader(path, document).load()
