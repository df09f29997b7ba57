"""Peak RSS of `aggregator publish` at 10,000 and 100,000 stories, on a SQLite and on a PostgreSQL state.

    .venv/bin/python benchmarks/publish_memory.py                      # 10,000 and 100,000 stories
    .venv/bin/python benchmarks/publish_memory.py --stories 10000 --code /tmp/old-checkout

The stories (2 KB of HTML each, one in 14 also carried by a second source, as publish.py makes them) go
into a SQLite state, which `migrate-state` copies into a fresh schema of --url. One output, `limit: 100`,
in Atom, RSS and JSON Feed. Per backend and size, the real CLI as a subprocess (its peak RSS, VmHWM):
`first` publishes into an empty folder (every archive page, so every story is read once), `one new`
after one more story (the current document and the newest page), `unchanged` with nothing changed.
--code runs the aggregator of another checkout (its folder holding `aggregator/`), for figures from
before a change; the stories are made with this checkout's store either way.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import write_config  # noqa: E402
from postgres import Schemas  # noqa: E402
from publish import add_stories  # noqa: E402

from aggregator.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000  # stories per transaction while filling the state


#: `aggregator` run in a child that reports its own peak RSS at exit: VmHWM of its own memory. (wait4's
#: ru_maxrss would include this process's memory: a child forked from it keeps that high-water mark
#: through exec.)
MEASURED = ("import atexit, sys\n"
            "def peak():\n"
            "    status = open('/proc/self/status').read()\n"
            "    print('peak-kib', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
            "atexit.register(peak)\n"
            "from aggregator.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")


def publish(config: Path, code: Path | None) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, last line of output) of one `aggregator publish`."""
    env = {**os.environ, **({"PYTHONPATH": str(code)} if code else {})}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", MEASURED, "-c", str(config), "publish"], cwd=str(code or ROOT),
                            env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    peak = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("peak-kib ")]
    if result.returncode or not peak:
        raise SystemExit(f"publish failed:\n{result.stdout}{result.stderr}")
    return seconds, int(peak[0]) / 1024, result.stdout.strip().splitlines()[-1]


def fill(state: str, count: int) -> None:
    store = Store(state)
    try:
        for first in range(0, count, BATCH):
            add_stories(store, first, min(BATCH, count - first))
    finally:
        store.close()


def measure(name: str, folder: Path, state: str, count: int, code: Path | None) -> None:
    config = write_config(folder, [{"id": s, "url": f"https://{s}.example/feed"} for s in ("src", "copy")],
                          [{"id": "all", "title": "All", "limit": 100, "formats": ["atom", "rss", "json"]}],
                          state=state)
    for label in ("first", "one new", "unchanged"):
        if label == "one new":
            store = Store(state)
            add_stories(store, count, 1)
            store.close()
        seconds, rss, line = publish(config, code)
        print(f"  {name:<10} {count:>7} stories  {label:<9} {seconds:7.1f} s  peak RSS {rss:6.0f} MB   ({line})",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", default="10000,100000", help="comma-separated story counts")
    parser.add_argument("--url", default=os.environ.get("AGGREGATOR_TEST_POSTGRES",
                                                        "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--code", type=Path, help="run the aggregator of this checkout instead")
    args = parser.parse_args()
    schemas = Schemas(args.url)
    try:
        for count in (int(n) for n in args.stories.split(",")):
            with tempfile.TemporaryDirectory(prefix="bench-publish-memory-") as directory:
                base = Path(directory)
                started = time.monotonic()
                sqlite = base / "sqlite" / "state.db"
                sqlite.parent.mkdir()
                fill(str(sqlite), count)
                postgres = schemas.new()
                subprocess.run([sys.executable, "-m", "aggregator", "migrate-state", str(sqlite), postgres],
                               cwd=str(ROOT), check=True, capture_output=True)
                print(f"{count} stories made and copied to PostgreSQL in {time.monotonic() - started:.0f} s",
                      flush=True)
                for name, state in (("sqlite", str(sqlite)), ("postgresql", postgres)):
                    (base / name).mkdir(exist_ok=True)
                    measure(name, base / name, state, count, args.code)
    finally:
        schemas.drop()


if __name__ == "__main__":
    main()
