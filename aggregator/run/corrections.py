"""An operator's corrections to dedup: `merge` joins two stories, `unmerge` moves one copy out of its story.

Names on the command line are what `explain` takes: an entry id (current or
retired) or a copy's link, guid or canonical link. Each correction runs in one
transaction, under the lock polls take to match new copies, is stored as a
decision (store/stories.py) that later polls and the automatic rules never
undo, and queues the stories it changed for every output that selects them:
the next publish shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Config
from ..dedup.links import canonical_link
from ..dedup.match import surviving_story
from ..errors import AggregatorError
from ..models import from_text, to_text
from ..store import Store, story_uid
from ..store.stories import Action, DecidedBy, Join, NamedCopy
from .pipeline import outputs_selecting

PREFERRED = ("link", "guid", "canonical")  # a copy's own names, strongest first


class NotFound(AggregatorError):
    """No story or copy has that name (exit 1)."""


class BadUsage(AggregatorError):
    """The names do not say what to correct: several copies match, or a story where a copy is needed (exit 2)."""


@dataclass(frozen=True)
class Correction:
    """What a correction did, as one line, and whether it changed anything."""

    line: str
    changed: bool


def named(store: Store, needle: str) -> list[NamedCopy]:
    copies = store.copies_named(needle, canonical_link(needle))
    if not copies:
        raise NotFound(f"no story has the id or a copy with the link {needle}; entry ids look like urn:uuid:…, as in "
                       "the <id> of an output entry (`aggregator explain` takes the same names)")
    return copies


def one_copy(store: Store, needle: str, strict: bool = True) -> NamedCopy:
    """The copy a name stands for: by its link, guid or canonical link; a story id names the copy that made the
    story (else, unless `strict`, its earliest copy)."""
    copies = named(store, needle)
    for by in PREFERRED:
        found = {c.item_id: c for c in copies if c.by == by}
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            raise BadUsage(f"{needle} names {len(found)} copies (items {', '.join(map(str, sorted(found)))}); "
                           "name one of them by its link or guid")
    maker = [c for c in copies if story_uid(c.source_id, c.key) == needle]
    if maker:
        return maker[0]
    story = {c.item_id: c for c in copies}
    if len(story) == 1 or not strict:
        return min(story.values(), key=lambda c: (c.published, c.item_id))
    raise BadUsage(f"{needle} is a story of {len(story)} copies; name the copy to move out by its link "
                   "(`aggregator explain` lists them)")


def one_story(store: Store, needle: str) -> NamedCopy:
    """A copy standing for the story a name names (an entry id, or a copy's link)."""
    copies = named(store, needle)
    for by in PREFERRED:
        stories = {c.story_id: c for c in copies if c.by == by}
        if len(stories) > 1:
            raise BadUsage(f"{needle} names copies of {len(stories)} stories; name one copy by its link or guid, "
                           "or the story by its entry id")
        if stories:
            return next(iter(stories.values()))
    return one_copy(store, needle, strict=False)


def merge(store: Store, config: Config, first: str, second: str, now: datetime) -> Correction:
    """Join the stories of two names into one: the story holding the earliest-published copy keeps its id and
    republication time (SPEC §6), the other id is retired into it; an earlier unmerge between them is undone."""
    with store.transaction() as db:
        store.lock(db, "story", ["match new copies"])
        a, b = one_story(store, first), one_story(store, second)
        if a.story_id == b.story_id:
            return Correction(f"{first} and {second} are already one story", False)
        survivor = surviving_story(Store.story_firsts(db, [a.story_id, b.story_id]))
        kept, gone = (a, b) if survivor == a.story_id else (b, a)
        uids = store.story_uids([kept.story_id, gone.story_id])
        Store.allow_together(db, Store.copies_of(db, [a.story_id]), Store.copies_of(db, [b.story_id]))
        decision = Store.record_decision(db, Action.MERGE, a.item_id, b.item_id, now, f"merge {first} {second}")
        sources = set().union(*Store.story_sources(db, [a.story_id, b.story_id]).values())
        Store.join_stories(db, kept.story_id, gone.story_id, Join(
            DecidedBy.OPERATOR, None, gone.item_id, f"an operator's merge (decision {decision})", 1.0), now)
        Store.queue_stories(db, outputs_selecting(config, sources), [kept.story_id])
    return Correction(f"merged: story {uids[gone.story_id]} is now part of {uids[kept.story_id]} (decision "
                      f"{decision}); outputs change at the next publish", True)


def unmerge(store: Store, config: Config, needle: str, now: datetime) -> Correction:
    """Move one copy out of its story into a story of its own, kept apart from the copies it leaves.

    The moved copy takes back the id of the story it once made if that id was
    retired into this story, else its own id if unused, else a new one; the
    story it leaves keeps its id and republication time."""
    with store.transaction() as db:
        store.lock(db, "story", ["match new copies"])
        copy = one_copy(store, needle)
        others = [i for i in Store.copies_of(db, [copy.story_id]) if i != copy.item_id]
        if not others:
            return Correction(f"{needle} is already a story of its own", False)
        uid, republished = story_uid(copy.source_id, copy.key), now
        retired = Store.retired_row(db, uid)
        if retired and retired[0] == copy.story_id:
            Store.revive(db, uid)
            republished = from_text(retired[1])
        elif Store.uid_in_use(db, uid):
            uid = story_uid(copy.source_id, f"{copy.key}\x00unmerged\x00{to_text(now)}")
        sources = Store.story_sources(db, [copy.story_id])[copy.story_id]
        story_id = Store.create_story(db, uid, republished)
        decision = Store.record_decision(db, Action.UNMERGE, copy.item_id, None, now, f"unmerge {needle}")
        Store.move_copy(db, copy.item_id, story_id)
        Store.keep_apart(db, copy.item_id, others, decision)
        Store.queue_stories(db, outputs_selecting(config, sources), [copy.story_id, story_id])
        left = store.story_uids([copy.story_id])[copy.story_id]
    return Correction(f"unmerged: item {copy.item_id} ({copy.source_id}) is now story {uid}, apart from "
                      f"{left} (decision {decision}); outputs change at the next publish", True)
