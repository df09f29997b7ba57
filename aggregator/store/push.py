"""Queries of the push_subscriptions table: each source's WebSub subscription (run/push.py drives it).

One row per source that advertises a hub: which hub and topic, our secret,
the state (pending, live, denied), the lease, the last error and when the
subscriber acts on it next. The state changes that the hub's callbacks make
are single guarded UPDATEs, so a verification arriving while the subscriber
thread writes cannot be lost or applied to a subscription it was not for.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from ..models import PushState, PushSubscription, from_text, to_text

Connection = Any

_TIMES = {"requested", "expires", "next_action"}
_COLUMNS = [f.name for f in fields(PushSubscription)]
_WANTED = (PushState.PENDING.value, PushState.LIVE.value)


class PushQueries:
    """Subscriptions: read, found when due, and moved between states by the subscriber and the hub's callbacks."""

    def push_subscription(self, source_id: str) -> PushSubscription | None:
        rows = self.query(f"SELECT {', '.join(_COLUMNS)} FROM push_subscriptions WHERE source_id = ?", (source_id,))
        return _subscription(rows[0]) if rows else None

    def push_subscriptions(self) -> dict[str, PushSubscription]:
        rows = self.query(f"SELECT {', '.join(_COLUMNS)} FROM push_subscriptions")
        return {row["source_id"]: _subscription(row) for row in rows}

    def push_due(self, now: datetime) -> list[PushSubscription]:
        """The subscriptions the subscriber has something to do about at `now`, oldest first."""
        rows = self.query(f"SELECT {', '.join(_COLUMNS)} FROM push_subscriptions WHERE next_action IS NOT NULL "
                          "AND next_action <= ? ORDER BY next_action, source_id", (to_text(now),))
        return [_subscription(row) for row in rows]

    def save_push(self, subscription: PushSubscription) -> None:
        values = [to_text(getattr(subscription, c)) if c in _TIMES else getattr(subscription, c) for c in _COLUMNS]
        with self.transaction() as db:
            db.execute(f"INSERT INTO push_subscriptions ({', '.join(_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (source_id) DO UPDATE SET "
                       f"{', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}", values)

    def push_discovered(self, source_id: str, hub: str, topic: str, now: datetime) -> bool:
        """A poll found the source advertising this hub and topic: a new pending subscription, unless it has the
        one for them already (whatever URL the hub is now reached at: https, or where it redirected)."""
        with self.transaction() as db:
            row = db.execute("SELECT advertised, topic FROM push_subscriptions WHERE source_id = ?",
                             (source_id,)).fetchone()
            if row is not None and (row[0], row[1]) == (hub, topic):
                return False
            db.execute("DELETE FROM push_subscriptions WHERE source_id = ?", (source_id,))
            db.execute("INSERT INTO push_subscriptions (source_id, hub, advertised, topic, state, attempts, "
                       "next_action) VALUES (?, ?, ?, ?, ?, 0, ?)",
                       (source_id, hub, hub, topic, PushState.PENDING.value, to_text(now)))
        return True

    def drop_push(self, source_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM push_subscriptions WHERE source_id = ? RETURNING source_id",
                              (source_id,)).fetchone() is not None

    def push_verified(self, source_id: str, topic: str, lease: int, expires: datetime, renew: datetime) -> bool:
        """The hub verified our intent for this topic: live until `expires`. False if we asked for no such thing
        (another topic, a denied subscription, or a pending one never requested)."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE push_subscriptions SET state = ?, lease = ?, expires = ?, next_action = ?, error = NULL, "
                "attempts = 0, requested = NULL WHERE source_id = ? AND topic = ? AND "
                "(state = ? OR (state = ? AND requested IS NOT NULL)) RETURNING source_id",
                (PushState.LIVE.value, lease, to_text(expires), to_text(renew), source_id, topic,
                 PushState.LIVE.value, PushState.PENDING.value)).fetchone() is not None

    def push_denied(self, source_id: str, topic: str, reason: str) -> bool:
        """The hub denied this topic's subscription: no more requests for it, pushes refused."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE push_subscriptions SET state = ?, error = ?, expires = NULL, requested = NULL, "
                "next_action = NULL WHERE source_id = ? AND topic = ? AND state IN (?, ?) RETURNING source_id",
                (PushState.DENIED.value, reason, source_id, topic, *_WANTED)).fetchone() is not None

    def push_failed(self, source_id: str, requested: datetime | None, error: str, retry: datetime) -> None:
        """The request sent at `requested` failed (or was never verified): try again at `retry`.

        Guarded by `requested`, so a failure reported late cannot undo a verification that came meanwhile.
        """
        sent = "requested IS NULL" if requested is None else "requested = ?"
        with self.transaction() as db:
            db.execute("UPDATE push_subscriptions SET error = ?, attempts = attempts + 1, requested = NULL, "
                       f"next_action = ? WHERE source_id = ? AND {sent}",
                       (error, to_text(retry), source_id) + (() if requested is None else (to_text(requested),)))

    def push_lapsed(self, source_id: str, expires: datetime, error: str, now: datetime) -> bool:
        """A live subscription's lease ended unrenewed: pending again, to be requested anew now."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE push_subscriptions SET state = ?, expires = NULL, requested = NULL, error = ?, "
                "next_action = ? WHERE source_id = ? AND state = ? AND expires = ? RETURNING source_id",
                (PushState.PENDING.value, error, to_text(now), source_id, PushState.LIVE.value,
                 to_text(expires))).fetchone() is not None

    def set_next_poll(self, source_id: str, when: datetime) -> None:
        """The source's next poll moved (a live subscription's safety net), so `status` shows when it really is."""
        with self.transaction() as db:
            db.execute("UPDATE sources SET next_poll = ? WHERE id = ?", (to_text(when), source_id))


def _subscription(row) -> PushSubscription:
    values = {c: (from_text(row[c]) if c in _TIMES else row[c]) for c in _COLUMNS}
    values["state"] = PushState(values["state"])
    return PushSubscription(**values)
