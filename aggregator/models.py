"""The small frozen values that pass between pipeline stages.

Datetimes are always timezone-aware UTC; parse.py guarantees it at the boundary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import DamagedState, FailureKind

if TYPE_CHECKING:
    from .config import SourceConfig


def to_text(when: datetime | None) -> str | None:
    """RFC 3339 in UTC to the second, the form every stored and published time has (text order is time order)."""
    if when is None:
        return None
    if when.tzinfo is not timezone.utc:
        when = when.astimezone(timezone.utc)
    return when.isoformat(timespec="seconds")[:19] + "Z"  # a third faster than strftime, and years < 1000 keep 4 digits


def from_text(text: str | None) -> datetime | None:
    """A stored RFC 3339 time; DamagedState when the stored text is none."""
    try:
        return datetime.fromisoformat(text) if text else None  # C-fast; reads the trailing Z as UTC
    except (TypeError, ValueError):
        raise DamagedState("a time that is not one") from None


def from_json(text: str) -> list:
    """A stored JSON list (authors, categories, fingerprint blocks); DamagedState when it is not one."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise DamagedState("a list that is not one") from None
    if not isinstance(value, list):
        raise DamagedState("a list that is not one")
    return value


class Outcome(StrEnum):
    """How one poll of one source went."""

    NEW = "new"  # it brought new entries
    UPDATED = "updated"  # known entries changed, none new
    UNCHANGED = "unchanged"
    ERROR = "error"
    SKIPPED = "skipped"  # not polled: gone, or inside a Retry-After window

    @property
    def changed(self) -> bool:
        """Whether the outputs carrying this source may have to be published again."""
        return self in (Outcome.NEW, Outcome.UPDATED)


class SourceStatus(StrEnum):
    """A source's state as `status` shows it (SPEC §2)."""

    NEW = "new"  # never polled
    OK = "ok"
    FAILING = "failing"
    GONE = "gone"  # answered 410: no longer polled
    DISABLED = "disabled"  # `enabled: false` in the config (never stored)


@dataclass(frozen=True)
class FetchResult:
    """What one HTTP or file: read produced; ``body`` is None for 304 Not Modified."""

    url: str
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set after a 301/308 chain: poll here from now on
    max_age: int | None = None  # Cache-Control: max-age, seconds

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class FeedInfo:
    """The source feed's own metadata, used for atom:source and scheduling hints."""

    title: str | None = None
    link: str | None = None  # the site (alternate)
    id: str | None = None  # as the feed gives it: it may be no URI at all (an RSS channel's <guid>)
    self_link: str | None = None  # the feed's own rel="self", absolute http(s)
    updated: datetime | None = None
    language: str | None = None
    ttl: int | None = None  # seconds the feed asks us to wait between polls
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Enclosure:
    """A file an item carries (a podcast's episode): RSS <enclosure>, Atom rel="enclosure", a JSON Feed attachment."""

    url: str  # absolute http(s)
    type: str | None = None  # its MIME type, lowercase, when the feed gives one
    length: int | None = None  # its size in bytes, when the feed gives one


@dataclass(frozen=True)
class Entry:
    """One item as its source gave it, in our own terms (HTML still unsanitised)."""

    key: str  # identity inside its source; see parse.entry_key
    title: str
    link: str | None = None
    guid: str | None = None
    summary: str | None = None
    content: str | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    language: str | None = None
    canonical: str | None = None  # the page's own canonical URL when the feed names one (feedburner:origLink)
    enclosures: tuple[Enclosure, ...] = ()  # in the feed's order, each URL once (reader/enclosures.py)


@dataclass(frozen=True)
class ParsedFeed:
    info: FeedInfo
    entries: tuple[Entry, ...]
    warning: str | None = None  # the XML was not well-formed: where, and that it was read as far as it goes
    encoding_warning: str | None = None  # the bytes fit no encoding declared: what was guessed (reader/encoding.py)


@dataclass(frozen=True)
class SourceMeta:
    """A source as an output document names it (atom:source, rss source, attribution)."""

    id: str
    title: str
    feed_id: str  # an absolute IRI, never a file: URL (output.select.source_meta)
    self_url: str | None  # a public http(s) URL of the feed, or None: nothing to link
    site_url: str | None
    updated: datetime


@dataclass(frozen=True)
class RelatedCopy:
    title: str
    link: str
    source_title: str


@dataclass(frozen=True)
class StoryEntry:
    """One story as an output shows it: the chosen copy plus the story's own id and dates."""

    uid: str
    republished: datetime
    published: datetime
    updated: datetime
    title: str
    link: str | None
    summary: str | None
    content: str | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    language: str | None
    source: SourceMeta
    related: tuple[RelatedCopy, ...] = ()
    sanitizer: str | None = None  # which sanitiser made summary and content: a page cleans others' again
    enclosures: tuple[Enclosure, ...] = ()


@dataclass(frozen=True)
class PollResult:
    """How one poll of one source went, for the CLI summary and the scheduler."""

    source_id: str
    outcome: Outcome
    new: int = 0
    updated: int = 0
    status: int | None = None
    error: str | None = None
    failure: FailureKind | None = None  # what kind of failure `error` describes (outcome ERROR)
    next_poll: datetime | None = None  # to the microsecond; the store keeps whole seconds


@dataclass(frozen=True)
class SourceState:
    """What the store remembers about polling one source."""

    id: str
    state: SourceStatus = SourceStatus.NEW
    configured_url: str | None = None  # the config's URL when `url` was adopted
    url: str | None = None  # adopted after a 301/308; None = the configured URL
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_status: int | None = None
    errors: int = 0
    next_poll: datetime | None = None
    retry_after: datetime | None = None
    last_error: str | None = None
    last_failure: FailureKind | None = None  # the kind of last_error
    feed_title: str | None = None
    feed_link: str | None = None
    feed_id: str | None = None
    feed_updated: datetime | None = None
    feed_self: str | None = None  # the feed's own rel="self" link
    min_interval: int | None = None  # the feed's own ttl / max-age, seconds
    entries: int = 0
    skip_hours: str | None = None  # RSS skipHours as "0 1 2" (GMT hours)
    skip_days: str | None = None  # RSS skipDays as "saturday sunday"
    changed_bodies: int = 0  # polls that brought a new body: publishing's inputs from this source may have changed
    warning: str | None = None  # what reading the last body worked around (broken XML, a guessed encoding): `status`
    body_changed: datetime | None = None  # when a poll last brought a new body (a tombstone's source moved on)


@dataclass(frozen=True)
class PublishingHistory:
    """How much a source published lately, for the adaptive interval (schedule.adaptive_interval)."""

    last_week: int = 0  # entries dated in the last seven days
    oldest: datetime | None = None  # the oldest entry's date the store holds for the source


@dataclass(frozen=True)
class StoredItem:
    """One copy of a story as the store holds it (HTML already sanitised)."""

    id: int
    story_id: int
    source_id: str
    key: str
    title: str
    link: str | None
    summary: str | None
    content: str | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    language: str | None
    published: datetime
    updated: datetime
    first_seen: datetime
    sanitizer: str | None = None  # which sanitiser made summary and content (reader/sanitize.SANITIZER)
    enclosures: tuple[Enclosure, ...] = ()


def polled_url(source: SourceConfig, state: SourceState) -> str:
    """The adopted URL after a permanent redirect, unless the operator has since changed the config."""
    if state.url and state.configured_url == source.url:
        return state.url
    return source.url


class PushState(StrEnum):
    """A source's WebSub subscription (SPEC §5.3), as `status` shows it."""

    PENDING = "pending"  # wanted: requested and awaiting the hub's verification, or to be (re)requested
    LIVE = "live"  # verified by the hub; pushes are taken until `expires`
    DENIED = "denied"  # the hub refused it: the source is polled as if it had no hub


@dataclass(frozen=True)
class PushSubscription:
    """What the store remembers about one source's subscription at its hub."""

    source_id: str
    hub: str  # where the hub is reached: as advertised, its https URL, or where it redirected
    topic: str  # the feed's rel="self" URL, as the hub knows it
    state: PushState = PushState.PENDING
    secret: str | None = field(default=None, repr=False)  # ours, sent only to an HTTPS hub; never shown anywhere
    requested: datetime | None = None  # when the last subscription request went out (None: none awaits an answer)
    expires: datetime | None = None  # the lease's end, once the hub verified it
    lease: int | None = None  # seconds the hub granted
    error: str | None = None  # why the last attempt failed, or the hub's reason for a denial
    attempts: int = 0  # failed attempts in a row: the retry backs off
    next_action: datetime | None = None  # when the subscriber acts on it next: request, renew, give up waiting
    advertised: str | None = None  # the hub as the feed names it (a new hub there is a new subscription)
