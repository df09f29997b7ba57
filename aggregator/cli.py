"""The command line: parses arguments, runs a command, turns our errors into one-line messages."""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, console
from .config import Config, default_config_path, load_config
from .errors import AggregatorError, ConfigError
from .models import Outcome, PollResult, SourceStatus, polled_url
from .output.pages import raise_for_templates
from .output.publish import WORKER_MODULE, finish_interrupted, publish_outputs
from .reader.hosts import HostLimiter
from .run.lifeline import spare_cores
from .run.outage import forgive_run
from .run.pipeline import poll
from .run.pollers import poll_in_processes
from .run.prepare import POOL_MIN_SOURCES
from .run.status import advice, output_rows, render_table, source_rows, store_row, warnings
from .store import Store
from .store.backend import is_postgresql

MAX_WORKERS = 16  # polling threads (shared out between the poller processes)


def main(argv: list[str] | None = None) -> int:
    with console.closable_stdout():  # `aggregator status | head -1` ends no command with a traceback
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aggregator: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aggregator", description="Poll feeds, merge stories, republish.")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="configuration file (default: $AGGREGATOR_CONFIG, then config/aggregator.yaml)")
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="the daemon: poll on schedule, republish, serve").set_defaults(func=cmd_run)
    once = commands.add_parser("once", help="poll sources once now, publish, and exit")
    once.add_argument("--source", action="append", default=[], metavar="ID", help="poll only this source (repeatable)")
    once.add_argument("--force", action="store_true", help="also poll gone sources and those inside Retry-After")
    once.set_defaults(func=cmd_once)
    commands.add_parser("publish", help="re-render every output from the store").set_defaults(func=cmd_publish)
    commands.add_parser("check", help="validate the configuration").set_defaults(func=cmd_check)
    _command(commands, "status", "one row per source", cmd_status,
             ("--json", {"action": "store_true", "help": "machine-readable output"}))
    _opml_parser(commands)
    _command(commands, "migrate-state", "copy the whole state between SQLite and PostgreSQL", cmd_migrate_state,
             ("source", {"metavar": "FROM", "help": "a SQLite file or a postgresql:// URL holding a state"}),
             ("target", {"metavar": "TO", "help": "a new SQLite file or an empty PostgreSQL database"}))
    _command(commands, "explain", "the copies of a story and the evidence that merged them", cmd_explain,
             ("needle", {"metavar": "ID-OR-URL", "help": "an entry id (urn:uuid:…) or a copy's link or guid"}),
             ("--against", {"metavar": "ID-OR-URL", "help": "another item: every score between the two, and the "
                                                             "rule that merged them or kept them apart"}))
    _command(commands, "merge", "an operator's correction: join the stories of A and B into one", cmd_merge,
             ("first", {"metavar": "A", "help": "an entry id or a copy's link or guid, as explain takes"}),
             ("second", {"metavar": "B", "help": "another one"}))
    _command(commands, "unmerge", "an operator's correction: move a copy out into a story of its own", cmd_unmerge,
             ("needle", {"metavar": "URL", "help": "the copy's link or guid (or an entry id it made)"}))
    _command(commands, "prune", "apply retention now: prune old stories, drop expired tombstones", cmd_prune,
             ("--dry-run", {"action": "store_true", "help": "print what would be removed, remove nothing"}))
    return parser


def _command(commands, name: str, help_text: str, func, *arguments: tuple[str, dict]) -> None:
    """A subcommand: its name, help, the function that runs it and its arguments (name, add_argument's options)."""
    command = commands.add_parser(name, help=help_text)
    for argument, options in arguments:
        command.add_argument(argument, **options)
    command.set_defaults(func=func)


def _config(args) -> Config:
    return load_config(args.config if args.config is not None else default_config_path())


def _publishing_config(args) -> Config:
    """The config of a command that publishes: its HTML templates must compile too, reported as FILE:LINE."""
    config = _config(args)
    raise_for_templates(config)
    return config


def cmd_check(args) -> int:
    config = _publishing_config(args)
    print(f"{config.path}: ok ({len(config.sources)} sources, {len(config.outputs)} outputs)")
    return 0


def cmd_publish(args) -> int:
    config = _publishing_config(args)
    finish_interrupted(config)
    store = Store.of(config)
    try:
        written = _publish(store, config)
    finally:
        store.close()
    print(f"published {len(config.outputs)} outputs, {len(written)} files rewritten")
    return 0


def cmd_once(args) -> int:
    config = _publishing_config(args)
    unknown = [s for s in args.source if config.source(s) is None]
    if unknown:
        print(f"aggregator: unknown source {', '.join(unknown)}; `aggregator status` lists them", file=sys.stderr)
        return 2
    finish_interrupted(config)  # a publish a crash interrupted, before anything else
    store = Store.of(config)
    try:
        results, forgiven = _poll_all(store, config, args.source, args.force)
        for result in results:
            print(_summary_line(result))
        if forgiven:
            print(f"network: no server answered ({len(forgiven)} sources): the network looks down; "
                  "not counted against the sources")
        counts = {k: sum(1 for r in results if r.outcome == k) for k in Outcome}
        print(f"total: {len(results)} sources, {sum(r.new for r in results)} new entries, "
              f"{sum(r.updated for r in results)} updated, {counts[Outcome.UNCHANGED]} unchanged, "
              f"{counts[Outcome.ERROR]} failed, {counts[Outcome.SKIPPED]} skipped")
        written = _publish(store, config, unless_unchanged=True)
        print(f"published {len(config.outputs)} outputs, {len(written)} files rewritten")
    finally:
        store.close()
    return 0


def _publish(store: Store, config: Config, unless_unchanged: bool = False) -> list[Path]:
    """publish_outputs, with a worker per core for the story pages when a publish has many (workers start then)."""
    with spare_cores([WORKER_MODULE]) as pool:
        return publish_outputs(store, config, unless_unchanged=unless_unchanged, pool=pool)


def _poll_all(store: Store, config: Config, only: list[str], force: bool) -> tuple[list[PollResult], list[str]]:
    """Every result, in config order, and the sources whose failures were given back (the network was down)."""
    now = datetime.now(timezone.utc)
    states = store.source_states(count_entries=False)
    todo, results = [], []
    for source in config.sources:
        if only and source.id not in only:
            continue
        if not only and not source.enabled:
            continue
        state = states.get(source.id)
        if state and not force:
            if state.state == SourceStatus.GONE:
                results.append(PollResult(source.id, Outcome.SKIPPED, error="gone (HTTP 410); use --force to poll it"))
                continue
            if state.retry_after and state.retry_after > now:
                results.append(PollResult(source.id, Outcome.SKIPPED,
                                          error=f"Retry-After until {state.retry_after.isoformat()}"))
                continue
        todo.append(source)
    progress = console.progress(len(todo))
    with store.grouped_commits():
        if len(todo) >= POOL_MIN_SOURCES and (os.cpu_count() or 1) > 1:
            results += poll_in_processes(store, config, [(s, states.get(s.id)) for s in todo], MAX_WORKERS, progress)
        else:
            limiter = HostLimiter()
            with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(todo)))) as pool:
                futures = {pool.submit(poll, store, config, source, limiter, state=states.get(source.id))
                           for source in todo}
                for future in as_completed(futures):
                    results.append(future.result())
                    progress.update(1)
    progress.close()
    forgiven = forgive_run(store, config, states, results)
    order = {s.id: s.order for s in config.sources}
    return sorted(results, key=lambda r: order[r.source_id]), forgiven


def _summary_line(result: PollResult) -> str:
    if result.outcome == Outcome.ERROR:
        return f"{result.source_id}: error: {result.error}"
    if result.outcome == Outcome.SKIPPED:
        return f"{result.source_id}: skipped: {result.error}"
    if result.outcome == Outcome.UNCHANGED:
        return f"{result.source_id}: unchanged" + (" (304)" if result.status == 304 else "")
    return f"{result.source_id}: {result.outcome}: {result.new} new, {result.updated} updated"


def cmd_status(args) -> int:
    config = _config(args)
    store = Store.of(config)
    try:
        rows = source_rows(store, config)
        outputs = output_rows(store, config)
        stats = store_row(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"sources": rows, "outputs": outputs, "store": stats}, indent=2, ensure_ascii=False))
        return 0
    print("\n".join(render_table(rows, datetime.now(timezone.utc))))
    print(f"\nstore: {stats['stories']} stories, {stats['tombstones']} tombstones, {stats['bytes']} bytes; "
          f"last prune {stats['last_prune'] or 'never'}")
    notes = advice(config, rows)
    if notes:
        print("\nto do:\n" + "\n".join(f"  {line}" for line in notes))
    if noticed := warnings(rows):
        print("\nwarnings:\n" + "\n".join(f"  {line}" for line in noticed))
    for row in outputs:
        if row["last_error"]:
            print(f"output {row['id']}: publish failed at {row['failed_at']}: {row['last_error']}")
    return 0


def _opml_parser(commands) -> None:
    opml = commands.add_parser("opml", help="import sources from OPML, or export them as OPML")
    actions = opml.add_subparsers(dest="opml_command", required=True, metavar="ACTION")
    importing = actions.add_parser("import", help="turn an OPML file's feeds into sources (printed as YAML)")
    importing.add_argument("file", type=Path, metavar="FILE")
    importing.add_argument("--write", action="store_true", help="append them to the config file instead")
    importing.add_argument("--allow-files", action="store_true",
                           help="also import file: outlines (local files; skipped by default)")
    importing.set_defaults(func=cmd_opml_import)
    exporting = actions.add_parser("export", help="print the sources as OPML 2.0 (credentials in URLs masked)")
    exporting.add_argument("--with-credentials", action="store_true",
                           help="print URLs whole, credentials included (a backup, a move to another reader)")
    exporting.set_defaults(func=cmd_opml_export)


def cmd_opml_import(args) -> int:
    from .output.opml import OpmlError, plan_import, read_outlines, sources_yaml, write_sources

    config = _config(args)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"aggregator: opml: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        plan = plan_import(read_outlines(data, str(args.file)), config, allow_files=args.allow_files)
        for reason in plan.skipped:
            print(f"skipped {reason}", file=sys.stderr)
        if args.write and plan.sources:
            write_sources(config.path, plan.sources)
    except OpmlError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 2
    if args.write:
        print(f"added {len(plan.sources)} sources to {config.path}, skipped {len(plan.skipped)}")
    elif plan.sources:
        print(f"# {len(plan.sources)} new sources from {args.file}: add them to {config.path} "
              "(or run again with --write)")
        print(sources_yaml(plan.sources), end="")
    else:
        print(f"# no new sources in {args.file} ({len(plan.skipped)} skipped)")
    return 0


def cmd_opml_export(args) -> int:
    from .output.opml import sources_opml

    config = _config(args)
    site_links, urls = {}, {}
    if not is_postgresql(config.state) and Path(config.state).exists():
        store = Store.of(config)
        try:
            for source in config.sources:
                state = store.source_state(source.id)
                urls[source.id] = polled_url(source, state)
                if state.feed_link:
                    site_links[source.id] = state.feed_link
        finally:
            store.close()
    sys.stdout.buffer.write(sources_opml(config, site_links, urls, credentials=args.with_credentials))
    return 0


def cmd_run(args) -> int:
    from .run.daemon import run

    return run(_publishing_config(args))


def cmd_prune(args) -> int:
    from .run.prune import prune

    config = _config(args)
    store = Store.of(config)
    try:
        report = prune(store, config, datetime.now(timezone.utc), dry_run=args.dry_run)
    finally:
        store.close()
    print(report.summary())
    return 0


def cmd_migrate_state(args) -> int:
    from .store.copy import describe, migrate_state

    try:
        copied = migrate_state(args.source, args.target)
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 2
    print(f"copied {sum(copied.values())} rows from {describe(args.source)} to {describe(args.target)}: "
          + ", ".join(f"{table} {count}" for table, count in copied.items()))
    return 0


def cmd_merge(args) -> int:
    from .run.corrections import merge

    return _correct(args, lambda store, config, now: merge(store, config, args.first, args.second, now).line)


def cmd_unmerge(args) -> int:
    from .run.corrections import unmerge

    return _correct(args, lambda store, config, now: unmerge(store, config, args.needle, now).line)


def _correct(args, correction) -> int:
    """Run an operator's correction (or explain --against) and print its text: 0 done (or nothing to do), 1 a name
    not found, 2 a name that is ambiguous."""
    from .run.corrections import BadUsage, NotFound

    config = _config(args)
    store = Store.of(config)
    try:
        print(correction(store, config, datetime.now(timezone.utc)))
    except NotFound as exc:
        print(f"aggregator: {exc.args[0]}", file=sys.stderr)
        return 1
    except BadUsage as exc:
        print(f"aggregator: {exc.args[0]}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def cmd_explain(args) -> int:
    from .dedup.links import canonical_link
    from .run.explain import explain_against, explain_pruned, explain_story

    if args.against is not None:
        return _correct(args, lambda store, config, _: "\n".join(
            explain_against(store, config, args.needle, args.against)))
    config = _config(args)
    store = Store.of(config)
    try:
        story_ids = store.stories_matching(args.needle, canonical_link(args.needle))
        pruned = store.tombstones_matching(args.needle) if not story_ids else []
        if pruned:
            print("\n".join(explain_pruned(pruned)))
            return 0
        if not story_ids:
            print(f"aggregator: no story has the id or a copy with the link {args.needle}; entry ids look like "
                  "urn:uuid:…, as in the <id> of an output entry", file=sys.stderr)
            return 1
        for number, story_id in enumerate(story_ids):
            print(("\n" if number else "") + "\n".join(explain_story(store, config, story_id)))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
