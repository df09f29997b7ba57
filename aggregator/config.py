"""YAML configuration → frozen objects, every problem reported as FILE:LINE: key.path: message.

The whole file is checked before anything runs, and all problems are collected
rather than stopping at the first, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from .errors import ConfigError
from .filters import Pattern, parse_pattern

ID_PATTERN = re.compile(r"^[a-z0-9_-]+$")
DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
FORMATS = ("atom", "rss", "json")
DEFAULT_ATTRIBUTION = "Originally published by {source} on {published:%Y-%m-%d}"


@dataclass(frozen=True)
class SourceConfig:
    id: str
    url: str
    order: int  # position in the config: the last tie-breaker between copies
    title: str | None = None
    tags: tuple[str, ...] = ()
    interval: float = 1800.0
    timeout: float = 30.0
    max_bytes: int = 10 * 1024**2
    max_entries: int = 500
    priority: int = 0
    enabled: bool = True


@dataclass(frozen=True)
class OutputConfig:
    id: str
    title: str
    subtitle: str | None = None
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    include: tuple[Pattern, ...] = ()
    exclude: tuple[Pattern, ...] = ()
    limit: int = 100
    formats: tuple[str, ...] = ("atom",)
    since: float | None = None
    languages: tuple[str, ...] = ()
    attribution: str | None = DEFAULT_ATTRIBUTION  # None: no visible attribution line
    icon: str | None = None
    logo: str | None = None
    author: str | None = None
    rights: str | None = None
    language: str | None = None

    def selects(self, source: SourceConfig) -> bool:
        if not self.sources and not self.tags:
            return True
        return source.id in self.sources or bool(set(self.tags) & set(source.tags))


@dataclass(frozen=True)
class Config:
    path: Path
    state: str  # a SQLite file path, or a postgresql:// URL
    output_dir: Path
    base_url: str
    sources: tuple[SourceConfig, ...]
    outputs: tuple[OutputConfig, ...]
    dedup_window: float = 14 * 86400.0
    listen: tuple[str, int] | None = None
    hubs: tuple[str, ...] = ()

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def sources_for(self, output: OutputConfig) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.sources if output.selects(s))


def default_config_path() -> Path:
    return Path(os.environ.get("AGGREGATOR_CONFIG") or "config/aggregator.yaml")


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or like 90s, 15m, 2h, 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION_PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write 90s, 15m, 2h, 7d or seconds")
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or like 512KB, 10MB")
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        match = SIZE_PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size: write 512KB, 10MB or bytes")
        size = int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "").upper()])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


class _Reader:
    """Walks the YAML tree, converting values and collecting every problem with its line."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int, key_path: str, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {key_path}: {message}")

    @staticmethod
    def line_of(node: Any, key: Any = None) -> int:
        lc = getattr(node, "lc", None)
        if lc is None:
            return 1
        try:
            if key is None:
                return lc.line + 1
            if isinstance(key, int):
                return lc.item(key)[0] + 1
            return lc.key(key)[0] + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            return lc.line + 1

    def mapping(self, node: Any, key_path: str, allowed: set[str], line: int) -> dict:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.problem(line, key_path, "expected a mapping of keys to values")
            return {}
        for key in node:
            if str(key) not in allowed:
                self.problem(
                    self.line_of(node, key),
                    f"{key_path}.{key}" if key_path else str(key),
                    f"unknown key; allowed here: {', '.join(sorted(allowed))}",
                )
        return node

    def value(self, node: dict, key: str, key_path: str, convert: Callable[[Any], Any], default: Any) -> Any:
        if key not in node or node[key] is None:
            return default
        try:
            return convert(node[key])
        except (ValueError, TypeError) as exc:
            self.problem(self.line_of(node, key), f"{key_path}.{key}" if key_path else key, str(exc))
            return default


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected a text value")
    return str(value)


def _identifier(value: Any) -> str:
    text = _string(value)
    if not ID_PATTERN.match(text):
        raise ValueError(f"{text!r} is not a valid id: use only a-z, 0-9, _ and -")
    return text


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number")
    return value


def _positive_integer(value: Any) -> int:
    number = _integer(value)
    if number <= 0:
        raise ValueError("expected a number above 0")
    return number


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return tuple(_string(v) for v in value)


def _http_url(value: Any) -> str:
    text = _string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http(s) URL")
    return text


class _Loader:
    SOURCE_KEYS = {"id", "url", "title", "tags", "interval", "timeout", "max_bytes", "max_entries", "priority", "enabled"}
    OUTPUT_KEYS = {
        "id", "title", "subtitle", "sources", "tags", "include", "exclude", "limit", "formats",
        "since", "languages", "attribution", "icon", "logo", "author", "rights", "language",
    }
    TOP_KEYS = {"state", "output", "defaults", "sources", "outputs", "dedup", "server", "websub"}

    def __init__(self, path: Path, document: Any):
        self.path = path
        self.base_dir = path.resolve().parent
        self.doc = document
        self.r = _Reader(path)

    def resolve_path(self, value: Any) -> str:
        text = os.path.expanduser(_string(value))
        if "://" in text:
            return text
        return str((self.base_dir / text).resolve())

    def source_url(self, value: Any) -> str:
        text = _string(value).strip()
        parts = urlsplit(text)
        if parts.scheme == "file":
            raw = text[len("file:"):]
            if raw.startswith("//"):
                raw = urlsplit(text).path
            return (self.base_dir / raw).resolve().as_uri()
        if parts.scheme in ("http", "https") and parts.netloc:
            return text
        raise ValueError(f"{text!r} is not an http, https or file URL")

    def load(self) -> Config:
        r = self.r
        top = r.mapping(self.doc, "", self.TOP_KEYS, 1)
        state = r.value(top, "state", "", self.resolve_path, str(self.base_dir / "aggregator.db"))
        output = r.mapping(top.get("output"), "output", {"dir", "base_url"}, r.line_of(top, "output"))
        output_dir = r.value(output, "dir", "output", self.resolve_path, str(self.base_dir / "feeds"))
        base_url = r.value(output, "base_url", "output", _http_url, "http://127.0.0.1:8080/")
        if not base_url.endswith("/"):
            base_url += "/"
        defaults = self.source_settings(
            r.mapping(top.get("defaults"), "defaults", self.SOURCE_KEYS - {"id", "url", "title"},
                      r.line_of(top, "defaults")),
            "defaults", SourceConfig("defaults", "", 0),
        )
        sources = self.sources(top, defaults)
        outputs = self.outputs(top, {s.id for s in sources})
        dedup = r.mapping(top.get("dedup"), "dedup", {"window"}, r.line_of(top, "dedup"))
        window = r.value(dedup, "window", "dedup", parse_duration, 14 * 86400.0)
        server = r.mapping(top.get("server"), "server", {"listen"}, r.line_of(top, "server"))
        listen = r.value(server, "listen", "server", _listen_address, None)
        websub = r.mapping(top.get("websub"), "websub", {"hubs"}, r.line_of(top, "websub"))
        hubs = r.value(websub, "hubs", "websub", lambda v: tuple(_http_url(h) for h in _string_list(v)), ())
        if r.problems:
            raise ConfigError(r.problems)
        return Config(
            path=self.path, state=state, output_dir=Path(output_dir), base_url=base_url,
            sources=sources, outputs=outputs, dedup_window=window, listen=listen, hubs=hubs,
        )

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
            title = r.value(node, "title", key_path, _string, None)
            settings = self.source_settings(node, key_path, base)
            if source_id in seen:
                r.problem(r.line_of(node, "id"), f"{key_path}.id",
                          f"duplicate source id {source_id!r} (first at line {seen[source_id]})")
            elif source_id:
                seen[source_id] = r.line_of(node, "id")
            if source_id and url:
                result.append(SourceConfig(source_id, url, index, title, **settings))
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


def _formats(value: Any) -> tuple[str, ...]:
    formats = _string_list(value)
    for name in formats:
        if name not in FORMATS:
            raise ValueError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return ("atom",) + tuple(f for f in FORMATS[1:] if f in formats)


def _attribution(value: Any) -> str | None:
    if value is True:
        return DEFAULT_ATTRIBUTION
    if value is False:
        return None
    template = _string(value)
    try:
        from datetime import datetime, timezone

        now = datetime.now(timezone.utc)
        template.format(source="s", link="l", published=now, republished=now, source_url="u")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"bad attribution template ({exc}); fields are {{source}}, {{link}}, {{source_url}}, "
            "{published:%Y-%m-%d}, {republished:%Y-%m-%d}"
        ) from exc
    return template


def _listen_address(value: Any) -> tuple[str, int]:
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return (host.strip("[]") or "127.0.0.1", int(port))


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
