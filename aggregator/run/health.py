"""/healthz as a probe that can fail: is the daemon alive *and* getting its work done? (SPEC §9)

A supervisor (systemd's watchdog script, Docker's HEALTHCHECK, a Kubernetes
liveness probe, a load balancer) restarts or drops a daemon that answers 503.
It answers 503, with every reason, when:

- the scheduler is not running, or has run no job for `server.stuck_after`
  (a heartbeat job on the pollers' executor, so it also stops when every
  polling thread is stuck);
- a poll is overdue by more than OVERDUE_INTERVALS of its source's interval,
  and by more than `stuck_after`;
- an output has failed to publish for `stuck_after`, or a change has waited
  that long to be published;
- the daemon is stopping.

`verdict` decides from values; the daemon gathers them (`Vitals`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from ..config import Config
from ..models import SourceState, SourceStatus

OVERDUE_INTERVALS = 3  # "a few intervals"
HEARTBEAT_EVERY = 5.0  # seconds between heartbeats (less when stuck_after is short)


@dataclass(frozen=True)
class Vitals:
    """What the daemon knows of its own health at one moment."""

    running: bool  # the scheduler runs and the daemon is not stopping
    stopping: bool
    since_heartbeat: float | None  # seconds since the heartbeat job last ran (None: not yet)
    publish_waiting: float | None  # seconds the oldest unpublished change has waited
    publish_failing: dict[str, tuple[float, str]] = field(default_factory=dict)  # output → (seconds, error)


def heartbeat_every(config: Config) -> float:
    return max(min(HEARTBEAT_EVERY, config.stuck_after / 4), 0.1)


def overdue(config: Config, states: dict[str, SourceState], now: datetime,
            started: datetime) -> list[tuple[str, float, float]]:
    """(source id, seconds overdue, seconds allowed) of the enabled sources whose poll is overdue past what is
    allowed: OVERDUE_INTERVALS intervals and stuck_after. A poll in flight keeps its source's old next poll,
    so a poll that never ends counts too. Polls due before the daemon `started` count from then: a daemon
    catching up after a long stop is not stuck."""
    late = []
    for source in config.sources:
        state = states.get(source.id)
        if not source.enabled or state is None or state.next_poll is None or state.state == SourceStatus.GONE:
            continue
        allowed = max(OVERDUE_INTERVALS * source.interval, config.stuck_after)
        behind = (now - max(state.next_poll, started)).total_seconds()
        if behind > allowed:
            late.append((source.id, behind, allowed))
    return sorted(late, key=lambda item: -item[1])


def verdict(config: Config, vitals: Vitals, late: list[tuple[str, float, float]]) -> list[str]:
    """Every reason the daemon is unhealthy; none: healthy."""
    reasons = []
    limit = config.stuck_after
    if vitals.stopping:
        reasons.append("the daemon is stopping")
    elif not vitals.running:
        reasons.append("the scheduler is not running")
    elif vitals.since_heartbeat is not None and vitals.since_heartbeat > limit:
        reasons.append(f"the scheduler has run no job for {vitals.since_heartbeat:.0f}s (every polling thread "
                       f"busy or stuck; server.stuck_after is {limit:g}s)")
    if late:
        source_id, behind, allowed = late[0]
        more = f" and {len(late) - 1} more" if len(late) > 1 else ""
        reasons.append(f"polls overdue: {source_id} by {behind:.0f}s (allowed {allowed:g}s){more}")
    for output_id, (seconds, _) in sorted(vitals.publish_failing.items()):
        if seconds > limit:  # the error itself may name local paths: `status` and the log show it
            reasons.append(f"publishing {output_id} has failed for {seconds:.0f}s (`aggregator status` says why)")
    if vitals.publish_waiting is not None and vitals.publish_waiting > limit:
        reasons.append(f"a change has waited {vitals.publish_waiting:.0f}s to be published")
    return reasons


class Heartbeat:
    """The time of the heartbeat job's last run, and of each output's first failure in a row."""

    def __init__(self):
        self._lock = threading.Lock()
        self._beat: float | None = None
        self._failing: dict[str, tuple[float, str]] = {}

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    def since(self) -> float | None:
        with self._lock:
            return None if self._beat is None else time.monotonic() - self._beat

    def published(self, output_id: str, error: str | None) -> None:
        """An output's publish ended: failing since its first failure in a row, or fine again."""
        with self._lock:
            if error is None:
                self._failing.pop(output_id, None)
            elif output_id not in self._failing:
                self._failing[output_id] = (time.monotonic(), error)
            else:
                self._failing[output_id] = (self._failing[output_id][0], error)

    def failing(self) -> dict[str, tuple[float, str]]:
        now = time.monotonic()
        with self._lock:
            return {o: (now - since, error) for o, (since, error) in self._failing.items()}
