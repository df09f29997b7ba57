"""Push latency: from a hub's signed content distribution to the new story in the served output.

`aggregator run` (the real CLI, a subprocess) serves one output and subscribes, over HTTPS with a secret,
to the stand-in hub of tests/websubhub.py for a loopback source polled once an hour. Each round adds
one story to the feed, has the hub push the feed, and polls GET /all.atom on the daemon's server every
10 ms until the story is there: the time from the push's start to that answer is the latency. The
source is never polled for the stories (the script checks), so the figure is push alone: HMAC check,
parse, sanitise, dedupe, store, the publisher's 0.1 s wait for company, render and write, serve.

    python benchmarks/push_latency.py                  # 30 pushes, a feed of 20 items
    python benchmarks/push_latency.py --pushes 100 --items 200
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import trustme  # noqa: E402  (test dependency: pip install -e '.[test]')
from conftest import write_config  # noqa: E402
from feedserver import FeedServer  # noqa: E402
from test_push import feed  # noqa: E402
from test_daemon import free_port, titles  # noqa: E402
from websubhub import Hub  # noqa: E402


def served(port: int) -> set[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/all.atom")
        response = conn.getresponse()
        body = response.read()
        return titles(body) if response.status == 200 else set()
    except OSError:
        return set()
    finally:
        conn.close()


def wait(predicate, timeout: float, what: str, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--items", type=int, default=20, help="items in the feed before the pushes")
    args = parser.parse_args()

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        bundle = work / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        hub, server = Hub(ssl_context=context).start(), FeedServer().start()
        topic = server.url("/pushy.xml")
        stories = [f"story {n}" for n in range(args.items)]
        server.serve("/pushy.xml", feed(hub.url, topic, stories), content_type="application/rss+xml")
        port = free_port()
        config = write_config(work, [{"id": "pushy", "url": topic, "interval": 3600}],
                              server={"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}/"},
                              websub={"subscribe": True})
        log = (work / "daemon.log").open("wb")
        daemon = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "run"], cwd=str(ROOT),
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "REQUESTS_CA_BUNDLE": str(bundle)})
        try:
            wait(lambda: hub.subscribers(topic), 60, "the subscription", every=0.1)
            wait(lambda: stories[-1] in served(port), 60, "the first poll's stories", every=0.1)
            polls = len(server.seen("/pushy.xml"))
            latencies = []
            for n in range(args.pushes):
                stories.append(f"pushed story {n}")
                body = feed(hub.url, topic, stories).encode()
                started = time.monotonic()
                hub.publish(topic, body)
                wait(lambda: stories[-1] in served(port), 30, f"pushed story {n}")
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
            assert len(server.seen("/pushy.xml")) == polls, "the source was polled: not push alone"
        finally:
            daemon.terminate()
            daemon.wait(30)
            hub.stop()
            server.stop()
    latencies.sort()
    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    print(f"{args.pushes} signed pushes (HTTPS hub, sha256), a feed of {args.items}+ items, hub POST to story "
          "served at /all.atom:")
    p90 = latencies[int(len(latencies) * 0.9)]
    print(f"  median {statistics.median(latencies) * 1000:.0f} ms   p90 {p90 * 1000:.0f} ms"
          f"   max {latencies[-1] * 1000:.0f} ms   min {latencies[0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
