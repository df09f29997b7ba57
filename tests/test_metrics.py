"""/metrics of `aggregator run` (SPEC §9), read with prometheus_client's own text parser as Prometheus would.

Three loopback sources, two of them carrying the same story (one merge by canonical link), one with
credentials in its URL; the series move as polls happen, per-source series exist only with
`metrics.per_source: true`, and nothing shows a credential or a local path.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from conftest import write_config
from test_daemon import daemons, fetch, free_port, rss, titles, wait_for  # noqa: F401 (daemons: a fixture)

PASSWORD = "hunter2-metrics"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    status, headers, body = fetch(port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def shared_story(name: str) -> str:
    """A feed whose one item links to the same article as the other feed's: one story, two copies."""
    text = " ".join(f"word{n}" for n in range(80))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title><link>http://{name}.example/'
            f"</link><item><title>The shared story</title><link>http://news.example/shared?utm_source={name}</link>"
            f"<guid>{name}-shared</guid><pubDate>Mon, 04 Mar 2024 12:00:00 GMT</pubDate>"
            f"<description>{text}</description></item></channel></rss>")


def site(tmp_path, feed_server, daemons, per_source: bool):
    port = free_port()
    host = feed_server.base.removeprefix("http://")
    sources = [
        {"id": "alpha", "url": feed_server.serve("/alpha.xml", shared_story("alpha"))},
        {"id": "beta", "url": feed_server.serve("/beta.xml", shared_story("beta"))},
        {"id": "gamma", "url": f"http://reader:{PASSWORD}@{host}/gamma.xml"},
    ]
    feed_server.serve("/gamma.xml", rss("gamma", 3))
    config = write_config(tmp_path, sources, defaults={"interval": 0.3}, server={"listen": f"127.0.0.1:{port}"},
                          metrics={"per_source": per_source})
    daemon = daemons(config)
    def served() -> int:
        status, _, body = fetch(port, "/all.atom")
        return len(titles(body)) if status == 200 else 0

    wait_for(lambda: served() == 4, timeout=30, what="4 stories served", log=daemon.log)
    return port, daemon


def test_metrics_parse_and_move_as_polls_happen(tmp_path, feed_server, daemons):
    port, daemon = site(tmp_path, feed_server, daemons, per_source=False)
    wait_for(lambda: value(scrape(port), "aggregator_publish_duration_seconds_count") >= 1, what="a publish counted")
    first = scrape(port)
    wait_for(lambda: value(scrape(port), "aggregator_polls_total", outcome="unchanged")
             >= value(first, "aggregator_polls_total", outcome="unchanged") + 5, what="polls counted")
    later = scrape(port)
    assert value(later, "aggregator_polls_total", outcome="new") == 3  # each source's first poll
    assert value(later, "aggregator_fetch_duration_seconds_count") > \
        value(first, "aggregator_fetch_duration_seconds_count")
    assert value(later, "aggregator_fetched_bytes_total") >= 3 * 300
    assert value(later, "aggregator_entries_total", change="new") == 4  # three of gamma, the shared story once
    assert value(later, "aggregator_entries_total", change="merged") == 1
    assert value(later, "aggregator_dedup_decisions_total", rule="same_canonical_link") == 1
    assert value(later, "aggregator_dedup_decisions_total", rule="new_story") == 4
    assert value(later, "aggregator_documents_written_total") >= 3  # all.atom, feed.xsl, index.opml
    assert value(later, "aggregator_last_publish_timestamp_seconds") > 1.7e9
    assert value(later, "aggregator_sources", state="ok") == 3
    assert value(later, "aggregator_sources", state="failing") == 0
    assert 0 <= value(later, "aggregator_oldest_overdue_poll_seconds") < 60
    assert value(later, "aggregator_store_size_bytes") > 4096
    assert value(later, "aggregator_push_subscriptions", state="live") == 0
    assert ("aggregator_build_info", (("version", "0.1.0"),)) in later
    assert value(later, "process_resident_memory_bytes") > 0
    assert not [name for name, _ in later if name.startswith("aggregator_source_")]  # per_source is off

    feed_server.serve("/gamma.xml", rss("gamma", 4))
    wait_for(lambda: value(scrape(port), "aggregator_entries_total", change="new") == 5, what="a new entry counted")

    body = fetch(port, "/metrics")[2].decode()
    assert PASSWORD not in body and str(tmp_path) not in body and "127.0.0.1" not in body
    assert fetch(port, "/metrics")[0] == 200 and fetch(port, "/metrics")[1]["cache-control"] == "no-store"
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.text()


def test_per_source_series_only_with_metrics_per_source(tmp_path, feed_server, daemons):
    port, daemon = site(tmp_path, feed_server, daemons, per_source=True)
    wait_for(lambda: value(scrape(port), "aggregator_source_polls_total", source="gamma", outcome="unchanged") >= 2,
             what="gamma's polls counted")
    samples = scrape(port)
    assert value(samples, "aggregator_source_polls_total", source="alpha", outcome="new") == 1
    assert value(samples, "aggregator_source_entries_total", source="gamma", change="new") == 3
    assert value(samples, "aggregator_source_entries_total", source="beta", change="merged") + \
        value(samples, "aggregator_source_entries_total", source="alpha", change="merged") == 1
    assert value(samples, "aggregator_source_fetched_bytes_total", source="beta") > 300
    assert value(samples, "aggregator_source_last_success_timestamp_seconds", source="gamma") > 1.7e9
    assert ("aggregator_source_consecutive_errors", (("source", "alpha"),)) in samples
    assert PASSWORD not in fetch(port, "/metrics")[2].decode()
    assert daemon.stop() == 0
