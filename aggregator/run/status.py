"""Every source's health, as `status` prints it and the server's index page shows it."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from ..config import Config, SourceConfig
from ..models import PushState, PushSubscription, SourceState, SourceStatus, polled_url, to_text as rfc3339
from ..redaction import redact
from ..store import Store

COLUMNS = ["id", "state", "last_poll", "last_success", "last_status", "errors", "next_poll", "entries", "push", "url",
           "last_error"]


def source_rows(store: Store, config: Config, public: bool = False) -> list[dict]:
    """One row per configured source, in config order, with the keys of SPEC §2 `status --json`.

    URLs and errors never show credentials (redaction.redact); a file: source is shown by its URL as the
    config writes it, and with `public` (the server's status page) an absolute one by its file name only.
    """
    states = store.source_states()
    subscriptions = store.push_subscriptions()
    rows = []
    for source in config.sources:
        state = states.get(source.id) or SourceState(id=source.id)
        gone = state.state == SourceStatus.GONE and state.configured_url == source.url
        url = shown_url(source, state)
        error = redact(state.last_error) if state.last_error else None
        if public and url != public_name(url):
            url, error = public_name(url), error and error.replace(url, public_name(url))
        rows.append({
            "id": source.id,
            "url": url,
            "state": SourceStatus.DISABLED if not source.enabled else state.state,
            "last_poll": rfc3339(state.last_poll),
            "last_success": rfc3339(state.last_success),
            "last_status": state.last_status,
            "errors": state.errors,
            "next_poll": rfc3339(state.next_poll) if source.enabled and not gone else None,
            "entries": state.entries,
            "last_error": error,
            "warning": state.warning,  # what reading its last body worked around (broken XML, a guessed encoding)
            "push": push_row(subscriptions.get(source.id)),
        })
    return rows


def store_row(store: Store) -> dict:
    """The store as a whole, as `status --json` shows it (SPEC §2)."""
    stats = store.stats()
    return {"stories": stats.stories, "tombstones": stats.tombstones, "bytes": stats.bytes,
            "last_prune": rfc3339(stats.last_prune)}


def shown_url(source: SourceConfig, state: SourceState) -> str:
    """The URL polled, as status shows it: the adopted one after a 301, else the one the config writes;
    credentials masked."""
    url = polled_url(source, state)
    return redact(source.shown_url if url == source.url else url)


def public_name(url: str) -> str:
    """An absolute file: URL as `file:…/<file name>`, so that a public page names no local folder."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path.startswith("/"):
        return "file:…/" + parts.path.rstrip("/").rsplit("/", 1)[-1]
    return url


def push_row(subscription: PushSubscription | None) -> dict | None:
    """A source's WebSub subscription as `status --json` shows it (SPEC §2); its secret never."""
    if subscription is None:
        return None
    return {"state": subscription.state.value, "hub": redact(subscription.hub),
            "expires": rfc3339(subscription.expires) if subscription.state == PushState.LIVE else None,
            "error": subscription.error}


def push_text(push: dict | None) -> str:
    """The push column of the table: none, pending, live until DATE, denied: reason."""
    if push is None:
        return "none"
    if push["state"] == PushState.LIVE:
        return f"live until {push['expires']}"
    if push["state"] == PushState.DENIED:
        return f"denied: {push['error']}"
    return "pending" + (f" ({push['error']})" if push["error"] else "")


def output_rows(store: Store, config: Config) -> list[dict]:
    """One row per output: when and why its last publish failed (null while it publishes fine)."""
    failures = store.output_failures()
    return [{"id": o.id, "failed_at": rfc3339(failures[o.id][0]) if o.id in failures else None,
             "last_error": failures[o.id][1] if o.id in failures else None} for o in config.outputs]


def advice(config: Config, rows: list[dict], public: bool = False) -> list[str]:
    """What the operator should change in the config: moved sources' new URLs, gone sources.

    The new URL is shown with its credentials masked, as every URL is; `public` names the config by its
    file name only."""
    lines = []
    for source, row in zip(config.sources, rows):
        path = config.path.name if public else str(config.path)
        if row["url"] not in (redact(source.shown_url), public_name(redact(source.shown_url))):
            lines.append(f"{source.id}: moved permanently to {row['url']}; "
                         f"set `url: {row['url']}` for it in {_where(config, source.shown_url, path)}")
        elif row["state"] == SourceStatus.GONE:
            lines.append(f"{source.id}: gone (HTTP 410), no longer polled; remove it from {path} "
                         "or give it a new url")
    return lines


def warnings(rows: list[dict]) -> list[str]:
    """One line per source whose last body needed a workaround the feed's publisher could fix."""
    return [f"{row['id']}: {row['warning']}" for row in rows if row.get("warning")]


def _where(config: Config, url: str, path: str) -> str:
    """FILE:LINE of the source's url in the config, when the URL is written there verbatim."""
    try:
        for number, line in enumerate(config.path.read_text(encoding="utf-8").splitlines(), start=1):
            if url in line:
                return f"{path}:{number}"
    except OSError:
        pass
    return path


def relative(when: str | None, now: datetime) -> str:
    """An RFC 3339 time as '3m ago' / 'in 12m', for people reading a terminal."""
    if when is None:
        return "-"
    seconds = (datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - now).total_seconds()
    amount = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if amount >= size:
            text = f"{amount / size:.0f}{unit}"
            break
    else:
        text = f"{amount:.0f}s"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def render_table(rows: list[dict], now: datetime) -> list[str]:
    """The rows as aligned columns, times relative to now; the last error unabridged at the end of its row."""
    times = {"last_poll", "last_success", "next_poll"}
    table = [[relative(row[c], now) if c in times else push_text(row[c]) if c == "push"
              else ("-" if row[c] is None else str(row[c])) for c in COLUMNS] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(COLUMNS)]
    widths[-1] = 0
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return lines
