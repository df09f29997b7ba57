"""`explain`: a story's copies and how each joined it, the stories joined into it, an operator's decisions;
and `explain A --against B`: every score between two copies and the rule that merged them or kept them apart.

Reads the store and asks dedup to judge again (dedup.apart); writes nothing.
"""

from __future__ import annotations

import json

from ..config import Config
from ..output.select import copy_rank, source_meta
from ..dedup.apart import Comparison, compare
from ..dedup.copies import stored_copy
from ..store import Store, story_uid
from ..store.stories import Action, NamedCopy
from .corrections import one_copy
from .status import rfc3339


def explain_pruned(tombstones) -> list[str]:
    """A story retention pruned: when, and the tombstones that keep its items from coming back."""
    lines = []
    for uid in dict.fromkeys(t.uid for t in tombstones):
        mine = [t for t in tombstones if t.uid == uid]
        lines.append(f"story {uid} was pruned on {rfc3339(mine[0].pruned)} (retention.keep); archive pages and "
                     "story pages written before keep it")
        lines += [f"  tombstone: item {t.key!r} of {t.source_id}, last listed by its source {rfc3339(t.last_listed)}"
                  for t in mine]
    return lines


def explain_story(store: Store, config: Config, story_id: int) -> list[str]:
    """The story's copies, the shown one first, then how each copy joined it and on what evidence."""
    story = store.story_rows([story_id])[story_id]
    sources, states = {s.id: s for s in config.sources}, store.source_states()
    items = store.items_of_story(story_id)
    ranked = sorted(items, key=lambda i: copy_rank(sources[i.source_id], i.published) if i.source_id in sources
                    else (float("inf"), i.published, len(sources)))
    name = {i.id: (source_meta(sources[i.source_id], states.get(i.source_id), config.base_url).title
                   if i.source_id in sources else f"{i.source_id} (no longer in the config)") for i in items}
    lines = [f"story {story['uid']}, republished {story['republished']}",
             f"copies ({len(items)}), the one outputs show first:"]
    for rank, item in enumerate(ranked):
        lines.append(f"  {'*' if rank == 0 else '-'} item {item.id} from {item.source_id} ({name[item.id]}), "
                     f"published {rfc3339(item.published)}, first seen {rfc3339(item.first_seen)}")
        lines.append(f"      {item.title!r} <{item.link or 'no link'}>")
    merges = store.merge_rows(story_id)
    retired = {r.uid for r in store.retired_into(story_id)}
    lines.append("how the copies joined:")
    for item in sorted(items, key=lambda i: (i.first_seen, i.id)):
        merge = merges.get(item.id)
        if merge is None:
            made = story_uid(item.source_id, item.key)
            lines.append(f"  item {item.id} ({item.source_id}) started " + (
                f"story {made}, since joined into this one" if made in retired else "the story"))
            continue
        lines.append(f"  item {item.id} ({item.source_id}) joined on {merge['decided']} via item "
                     f"{merge['matched_item']}: {merge['evidence']} (score {merge['score']:.2f})")
        if merge["details"]:
            lines.append("      " + _scores_line(json.loads(merge["details"])))
    return lines + _joined_lines(store, story_id) + decision_lines(store, [i.id for i in items])


def _joined_lines(store: Store, story_id: int) -> list[str]:
    """The stories joined into this one: their retired ids, and who or what joined them."""
    retired = store.retired_into(story_id)
    if not retired:
        return []
    lines = ["stories joined into this one (their ids are retired: outputs show this story instead):"]
    for r in retired:
        via = f" by item {r.join.item_id}, which matched its item {r.join.matched_item}" if r.join.item_id else ""
        lines.append(f"  story {r.uid} (republished {r.republished}) joined on {r.retired}{via} "
                     f"[{r.join.decided_by}]: {r.join.evidence}")
        if r.join.details:
            lines.append("      " + _scores_line(r.join.details))
    return lines


def decision_lines(store: Store, item_ids: list[int]) -> list[str]:
    """An operator's decisions about these copies: stored, and never undone by the automatic rules."""
    decisions = store.decisions_about(item_ids)
    if not decisions:
        return []
    lines = ["operator decisions (later polls and the automatic rules never undo them):"]
    for d in decisions:
        what = (f"item {d.item_id} moved out into a story of its own, kept apart from the copies it left"
                if d.action == Action.UNMERGE else f"the stories of items {d.item_id} and {d.other_item} joined")
        lines.append(f"  decision {d.id}, {d.decided}: {d.action} ({d.note}): {what}")
    return lines


def explain_against(store: Store, config: Config, first: str, second: str) -> list[str]:
    """Two copies: if one story holds both, that story explained; else every score between them and the rule or
    threshold (or decision) that keeps them apart."""
    a, b = one_copy(store, first, strict=False), one_copy(store, second, strict=False)
    head = [_copy_line("A", store, a), _copy_line("B", store, b)]
    if a.story_id == b.story_id:
        return head + ["merged: both are copies of one story", ""] + explain_story(store, config, a.story_id)
    with store.snapshot() as db:
        rows = {r["id"]: stored_copy(r) for r in Store.copy_rows(db, [a.item_id, b.item_id])}
    new, old = (rows[a.item_id], rows[b.item_id]) if (a.published, a.item_id) > (b.published, b.item_id) \
        else (rows[b.item_id], rows[a.item_id])
    found = compare(new, old)
    lines = head + ["not merged: they are copies of two stories",
                    "scores: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in found.scores.items()),
                    "rules, strongest evidence first:"]
    lines += [f"  {'+' if c.met else '-'} {c.rule}: {'met: ' if c.met else ''}{c.why}" for c in found.checks]
    if found.refusal is not None:
        lines.append(f"  refused: {found.refusal.rule}: {found.refusal.why}")
    lines.append("kept apart by: " + _kept_apart_by(store, a, b, found))
    return lines + decision_lines(store, [a.item_id, b.item_id])


def _copy_line(label: str, store: Store, copy: NamedCopy) -> str:
    item = store.items_by_id([copy.item_id])[0]
    uid = store.story_uids([copy.story_id])[copy.story_id]
    return (f"{label}: item {item.id} from {item.source_id}, published {rfc3339(item.published)}, story {uid}\n"
            f"      {item.title!r} <{item.link or 'no link'}>")


def _kept_apart_by(store: Store, a: NamedCopy, b: NamedCopy, found: Comparison) -> str:
    """The reason, most decisive first: an operator's unmerge, one source, a refusal of what a rule would
    merge, no rule met, else what stopped it."""
    decision = store.apart_decision(a.item_id, b.item_id)
    if decision is not None:
        return f"an operator's unmerge (decision {decision}): the automatic rules never join them again"
    if a.source_id == b.source_id:
        return f"both come from {a.source_id}: two items of one source are two stories"
    evidence = found.evidence
    if evidence is None and found.refusal is not None and any(c.met for c in found.checks):
        return f"{found.refusal.rule}: {found.refusal.why}"
    if evidence is None:
        return "no rule is met (each rule's shortfall above); precision comes before recall"
    with store.snapshot() as db:
        sources = Store.story_sources(db, [a.story_id, b.story_id])
    shared = sorted(sources.get(a.story_id, frozenset()) & sources.get(b.story_id, frozenset()))
    if shared:
        return (f"the rules would merge them ({evidence.rule}), but their stories both hold a copy from "
                f"{', '.join(shared)}, and a source's two items are two stories")
    return (f"the rules would merge them now ({evidence.rule}), but they were not compared when the later one "
            "arrived: outside dedup.window of its story's original date, not among the candidates judged, or "
            "stored before these rules")


def _scores_line(d: dict) -> str:
    known = {"rule", "jaccard", "containment", "core_words", "words", "other_words", "title_similarity",
             "same_title", "generic_title", "hours_apart"}
    if not known <= d.keys():
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(d.items()))
    return (f"rule: {d['rule']}; Jaccard {d['jaccard']}, containment {d['containment']} over {d['core_words']} of "
            f"{d['words']} words (other copy {d['other_words']} words), title similarity {d['title_similarity']}"
            f"{', same title' if d['same_title'] else ''}{', generic title' if d['generic_title'] else ''}, "
            f"{d['hours_apart']}h apart" + "".join(f", {k.replace('_', ' ')} {d[k]}" for k in sorted(d.keys() - known)))


