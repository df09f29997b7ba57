"""The configuration as frozen values: sources, outputs and the daemon's settings, loaded once and passed on."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .filters import Pattern

ID_PATTERN = re.compile(r"^[a-z0-9_-]+$")
FORMATS = ("atom", "rss", "json")
DEFAULT_ATTRIBUTION = "Originally published by {source} on {published:%Y-%m-%d}"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"  # how HTML pages show dates (output.date_format)
DEFAULT_RETENTION = 90 * 86400.0


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
    written_url: str | None = None  # the url as the config writes it, when that is not `url` (a file: URL)

    @property
    def shown_url(self) -> str:
        """The url as the operator wrote it: what status and messages show (`url` is what is read)."""
        return self.written_url or self.url


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
    public_url: str | None = None  # server.public_url: how hubs reach server.listen (WebSub callbacks)
    stuck_after: float = 600.0  # server.stuck_after: /healthz fails once the daemon is stuck this long
    subscribe: bool = False  # websub.subscribe: subscribe to the hubs sources advertise
    push_lease: float = 10 * 86400.0  # websub.lease: the lease asked of hubs
    push_safety_interval: float = 6 * 3600.0  # websub.safety_interval: polls of a live source at most this often
    metrics_per_source: bool = False  # metrics.per_source
    templates: Path | None = None  # output.templates: a folder whose templates override the packaged ones
    date_format: str = DEFAULT_DATE_FORMAT
    retention: float | None = DEFAULT_RETENTION  # seconds a republished story stays in the store; None: forever

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def sources_for(self, output: OutputConfig) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.sources if output.selects(s))


def default_config_path() -> Path:
    return Path(os.environ.get("AGGREGATOR_CONFIG") or "config/aggregator.yaml")
