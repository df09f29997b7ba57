"""The browser view: the shipped XSL turns an Atom or RSS document into an HTML page with every entry's
title, source and both dates, and every published feed file points at the copy in the output folder."""

from __future__ import annotations

import re
import shutil

import pytest
from lxml import etree, html

from aggregator.output.documents import Document
from aggregator.output.atom import render
from aggregator.output.publish import stylesheet_bytes
from conftest import ROOT, run_cli
from test_publish_formats import sample_config, sample_entries


@pytest.fixture
def config(tmp_path):
    return sample_config(tmp_path)


def transform(document: bytes) -> html.HtmlElement:
    stylesheet = etree.XSLT(etree.fromstring(stylesheet_bytes()))
    result = stylesheet(etree.fromstring(document))
    return html.fromstring(str(result))


def readable(page: html.HtmlElement) -> str:
    return re.sub(r"\s+", " ", page.text_content())


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_transform_shows_each_entry_with_source_and_both_dates(config, fmt):
    page = transform(render(config, Document(config.outputs[0], prev_archive=2), fmt, sample_entries()))
    text = readable(page)
    assert page.findtext(".//title").startswith("World news")
    assert "This is a web feed" in text and f"https://feeds.example/world.{fmt}" in text
    articles = page.findall(".//article")
    assert len(articles) == len(sample_entries())
    for article, entry in zip(articles, sample_entries()):
        article_text = readable(article)
        assert entry.title in article_text
        assert article.find(".//h2/a").get("href") == entry.link
        assert entry.source.title in article_text
        assert f"originally published {entry.published:%Y-%m-%d %H:%M} UTC" in article_text
        assert f"republished {entry.republished:%Y-%m-%d %H:%M} UTC" in article_text
    older = [a for a in page.iter("a") if a.text == "Older entries"]
    assert older and older[0].get("href") == f"https://feeds.example/archive/world/2.{fmt}"


def test_transform_of_an_archive_page_links_newer_and_latest(config):
    page = transform(render(config, Document(config.outputs[0], page=2, full=True), "atom", sample_entries()))
    targets = {a.text: a.get("href") for a in page.iter("a")}
    assert targets["Latest entries"] == "https://feeds.example/world.atom"
    assert targets["Newer entries"] == "https://feeds.example/archive/world/3.atom"
    assert targets["Older entries"] == "https://feeds.example/archive/world/1.atom"


def test_published_files_reference_the_stylesheet_written_beside_them(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    yaml = tmp_path / "config" / "aggregator.yaml"
    yaml.write_text(yaml.read_text().replace("limit: 100", "limit: 20"))  # so tech has archive pages
    run_cli("once", config=yaml, check=True)
    out = tmp_path / "feeds"
    assert (out / "feed.xsl").read_bytes() == stylesheet_bytes()
    documents = [*out.glob("*.atom"), *out.glob("*.rss"), *out.glob("archive/*/*.atom"), *out.glob("archive/*/*.rss")]
    assert any("archive" in p.parts for p in documents)
    for path in documents:
        tree = etree.parse(str(path))
        pi = tree.getroot().getprevious()
        assert isinstance(pi, etree._XSLTProcessingInstruction), f"{path.name} has no xml-stylesheet"
        href = pi.get("href")
        assert (path.parent / href).resolve() == (out / "feed.xsl").resolve()
        page = transform(path.read_bytes())
        assert len(page.findall(".//article")) == len(tree.getroot().findall(".//{*}entry") or
                                                      tree.getroot().findall("channel/item"))
