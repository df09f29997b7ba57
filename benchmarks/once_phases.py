"""A cold `aggregator once` on N loopback feeds, split into its two phases: polling, then the first publish.

    python benchmarks/once_phases.py --feeds 1000
    python benchmarks/once_phases.py --feeds 200 --cpus 1 --profile main.prof   # one core; cProfile of the main process

The polling phase ends when `once` prints its `total:` line (every source stored), the publish when the
process exits. Printed: both walls, the CPU of the main process, of its pollers and of the publish's pool
workers (the fork server's children: adopted as their subreaper and waited for), the peak RSS of the
largest of them, and what the main process wrote while it polled (its write calls: the store's WAL and
checkpoints) beside the state's size then.
`--cpus` pins everything to those cores (taskset), `--profile` writes a cProfile of the main process
(wall-clock based: on one core it counts the time the workers take from it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, adopt_orphans, children, orphans_cpu, write_config  # noqa: E402
from feeds import FeedServer  # noqa: E402

# `aggregator once` in a process that, as it ends, reports its own CPU and its pollers' (its waited children).
RUN = """import cProfile, resource, sys
from aggregator.cli import main
profile = cProfile.Profile() if sys.argv[1] else None
try:
    (profile.runcall if profile else (lambda f, *a: f(*a)))(main, sys.argv[2:])
finally:
    if profile:
        profile.dump_stats(sys.argv[1])
    own, pollers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(own.ru_utime + own.ru_stime, pollers.ru_utime + pollers.ru_stime, file=sys.stderr)
"""


def written_bytes(pid: int) -> int:
    """What a process has passed to write calls so far (`wchar` of /proc/PID/io): the store's WAL frames and
    checkpoints, while it polls."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["wchar"])


def state_bytes(folder: Path) -> tuple[int, int]:
    """The sizes of the state's SQLite file and of its WAL."""
    return tuple((folder / name).stat().st_size if (folder / name).exists() else 0
                 for name in ("state.db", "state.db-wal"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--cpus", help="taskset core list, e.g. 1 or 0,1")
    parser.add_argument("--profile", metavar="FILE", help="cProfile of the main process into FILE")
    args = parser.parse_args()
    started = time.perf_counter()
    server = FeedServer(args.feeds)
    print(f"{args.feeds} feeds generated and serving in {time.perf_counter() - started:.0f} s", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-once-"))
    try:
        config = write_config(folder, server.urls())
        profile = str(Path(args.profile).resolve()) if args.profile else ""
        command = [sys.executable, "-c", RUN, profile, "-c", str(config), "once"]
        if args.cpus:
            command = ["taskset", "-c", args.cpus, *command]
        adopt_orphans()
        started, before, polled = time.perf_counter(), children(), None
        with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
                command, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=errors, text=True) as process:
            for line in process.stdout:
                if line.startswith("total:"):
                    polled = time.perf_counter() - started
                    written = written_bytes(process.pid), state_bytes(folder)
            _, status, usage = os.wait4(process.pid, 0)
            workers = orphans_cpu(before)
            process.returncode = os.waitstatus_to_exitcode(status)
            errors.seek(0)
            report = errors.read().split()
        ended = time.perf_counter() - started
        if process.returncode != 0 or polled is None:
            raise SystemExit(f"aggregator once failed (exit {process.returncode})")
        own, pollers = map(float, report[-2:])
        print(f"  polling {polled:8.1f} s   publish {ended - polled:8.1f} s   all {ended:8.1f} s "
              f"({args.feeds / ended:.1f} feeds/s)")
        print(f"  CPU: main process {own:.1f} s ({1000 * own / args.feeds:.1f} ms a feed), pollers {pollers:.1f} s "
              f"({1000 * pollers / args.feeds:.1f} ms a feed), publishing workers {workers:.1f} s "
              f"({1000 * workers / args.feeds:.1f} ms a feed); peak RSS {usage.ru_maxrss / 1024:.0f} MB (the largest)")
        wrote, (database, wal) = written
        print(f"  polling wrote {wrote / 2**20:.0f} MB (write calls of the main process) for a state of "
              f"{database / 2**20:.0f} MB and a WAL of {wal / 2**20:.0f} MB: {wrote / max(1, database):.2f}x the state")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
