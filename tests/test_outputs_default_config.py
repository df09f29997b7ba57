"""The default configuration end to end through the CLI: every output in all three formats, the same
entries in each, JSON Feed 1.1's required fields met, and nothing rewritten when nothing changed."""

from __future__ import annotations

import json
import shutil

from lxml import etree

from aggregator.config import load_config
from conftest import ROOT, run_cli
from test_publish_formats import json_feed_problems

ATOM = "{http://www.w3.org/2005/Atom}"


def test_default_config_publishes_every_format_of_every_output(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config_path = tmp_path / "config" / "aggregator.yaml"
    config = load_config(config_path)
    first = run_cli("once", config=config_path, check=True)
    out = tmp_path / "feeds"
    assert (out / "feed.xsl").exists() and (out / "index.opml").exists()
    for output in config.outputs:
        assert output.formats == ("atom", "rss", "json")
        atom = etree.parse(str(out / f"{output.id}.atom")).getroot()
        rss = etree.parse(str(out / f"{output.id}.rss")).getroot()
        feed = json.loads((out / f"{output.id}.json").read_text(encoding="utf-8"))
        assert json_feed_problems(feed) == []
        ids = [e.findtext(f"{ATOM}id") for e in atom.findall(f"{ATOM}entry")]
        assert ids and len(ids) == len(set(ids))
        assert ids == [i.findtext("guid") for i in rss.findall("channel/item")] == [i["id"] for i in feed["items"]]
        for entry, item in zip(atom.findall(f"{ATOM}entry"), feed["items"]):
            assert entry.findtext(f"{ATOM}source/{ATOM}title") == item["_aggregator"]["source"]["title"]
            assert entry.findtext("{*}republished") == item["_aggregator"]["republished"]
    assert "published 3 outputs" in first.stdout

    again = run_cli("once", config=config_path, check=True)
    assert "0 files rewritten" in again.stdout
    republished = run_cli("publish", config=config_path, check=True)
    assert "0 files rewritten" in republished.stdout
