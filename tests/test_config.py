"""Configuration: values as SPEC §3 writes them, and every kind of mistake reported as FILE:LINE: key.path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruamel.yaml import YAML

from aggregator.config import load_config, parse_duration, parse_size
from aggregator.config.loader import _Loader
from aggregator.errors import ConfigError
from conftest import ROOT, run_cli

GOOD = """\
state: ../var/agg.db
output:
  dir: ../public
  base_url: http://example.org/feeds
defaults:
  interval: 2h
  max_bytes: 512KB
sources:
  - id: wsws
    url: https://www.wsws.org/en/rss.xml
    title: World Socialist Web Site
    tags: [world, politics]
    interval: 15m
    priority: 10
  - id: local
    url: file:samples/x.xml
    enabled: false
outputs:
  - id: world
    title: World news
    sources: [wsws]
    include: ["Mali", "/\\\\bSahel\\\\b/i"]
    exclude: [sponsored]
    formats: [json, atom]
    since: 30d
    attribution: false
dedup:
  window: 7d
server:
  listen: 127.0.0.1:8081
"""


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "conf"
    folder.mkdir(exist_ok=True)
    path = folder / "aggregator.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_resolves_paths_defaults_and_units(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.state == str((tmp_path / "var" / "agg.db").resolve())
    assert config.output_dir == (tmp_path / "public").resolve()
    assert config.base_url == "http://example.org/feeds/"
    wsws, local = config.sources
    assert (wsws.interval, wsws.max_bytes, wsws.priority, wsws.tags) == (900, 512 * 1024, 10, ("world", "politics"))
    assert (local.interval, local.enabled) == (7200, False)
    assert local.url == (tmp_path / "conf" / "samples" / "x.xml").resolve().as_uri()
    assert local.shown_url == "file:samples/x.xml" and wsws.shown_url == wsws.url


@pytest.mark.parametrize("written, name", [("file:samples/local%20feed.atom", "local feed.atom"),
                                           ("file:samples/50%25%20off.xml", "50% off.xml"),
                                           ("file:samples/caf%C3%A9.xml", "café.xml")])
def test_a_file_url_is_percent_decoded_once_into_the_file_name(tmp_path, written, name):
    config = load_config(write(tmp_path, GOOD.replace("file:samples/x.xml", written)))
    local = config.sources[1]
    assert local.url == (tmp_path / "conf" / "samples" / name).resolve().as_uri() and local.shown_url == written
    absolute = (tmp_path / "conf" / "samples").resolve().as_uri() + "/" + written.rsplit("/", 1)[1]
    config = load_config(write(tmp_path, GOOD.replace("file:samples/x.xml", absolute)))
    assert config.sources[1].url == local.url and config.sources[1].shown_url == absolute
    world = config.outputs[0]
    assert world.formats == ("atom", "json") and world.limit == 100 and world.since == 30 * 86400
    assert world.attribution is None
    assert world.include[0].search("news from MALI") and world.include[1].search("the sahel region")
    assert not world.include[1].search("Sahelian")
    assert config.dedup_window == 7 * 86400 and config.listen == ("127.0.0.1", 8081)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, size", [("512KB", 524288), ("10MB", 10485760), (2048, 2048)])
def test_sizes(text, size):
    assert parse_size(text) == size


BAD_CASES = [
    # (what is wrong, replace this, with this, expected line, expected key path, words in the message)
    ("unknown key", "    priority: 10\n", "    priority: 10\n    colour: red\n", 15, "sources[0].colour", "unknown key"),
    ("duplicate id", "  - id: local\n", "  - id: wsws\n", 15, "sources[1].id", "duplicate source id"),
    ("unknown source", "    sources: [wsws]\n", "    sources: [wsws, nope]\n", 21, "outputs[0].sources[1]", "unknown source"),
    ("bad regex", '"/\\\\bSahel\\\\b/i"', '"/(unclosed/"', 22, "outputs[0].include[1]", "bad regular expression"),
    ("bad duration", "    interval: 15m\n", "    interval: fortnightly\n", 13, "sources[0].interval", "not a duration"),
    ("bad size", "  max_bytes: 512KB\n", "  max_bytes: lots\n", 7, "defaults.max_bytes", "not a size"),
    ("bad id", "  - id: local\n", "  - id: Local Feed\n", 15, "sources[1].id", "not a valid id"),
    ("bad url", "    url: file:samples/x.xml\n", "    url: gopher://x\n", 16, "sources[1].url", "not an http, https or file URL"),
    ("file url on another host", "    url: file:samples/x.xml\n", "    url: file://nas/feeds/x.xml\n", 16, "sources[1].url",
     "names another machine"),
    ("file url with a query", "    url: file:samples/x.xml\n", "    url: file:samples/x.xml?v=2\n", 16,
     "sources[1].url", "no query or fragment"),
    ("bad url with credentials", "    url: file:samples/x.xml\n", "    url: gopher://me:s3cret@x/\n", 16, "sources[1].url",
     "'gopher://***@x/' is not an http"),
    ("port out of range", "    url: file:samples/x.xml\n", "    url: http://me:s3cret@127.0.0.1:99999/x?token=abc\n", 16,
     "sources[1].url", "'http://***@127.0.0.1:99999/x?token=***' has no valid port (1-65535)"),
    ("port zero", "    url: file:samples/x.xml\n", "    url: https://example.org:0/feed\n", 16,
     "sources[1].url", "has no valid port (1-65535)"),
    ("port not a number", "    url: file:samples/x.xml\n", "    url: https://example.org:80a/feed\n", 16,
     "sources[1].url", "has no valid port (1-65535)"),
    ("no host", "    url: file:samples/x.xml\n", "    url: http://:8080/feed\n", 16,
     "sources[1].url", "has no host"),
    ("bad format", "    formats: [json, atom]\n", "    formats: [pdf]\n", 24, "outputs[0].formats", "unknown format"),
    ("bad boolean", "    enabled: false\n", "    enabled: maybe\n", 17, "sources[1].enabled", "true or false"),
    ("bad listen", "  listen: 127.0.0.1:8081\n", "  listen: everywhere\n", 30, "server.listen", "HOST:PORT"),
]


@pytest.mark.parametrize("name, old, new, line, key_path, words", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_check_reports_file_line_and_key_path(tmp_path, name, old, new, line, key_path, words):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    result = run_cli("check", config=path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:{line}: {key_path}: " in result.stderr, result.stderr
    assert words in result.stderr


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace("    interval: 15m\n", "    interval: soon\n").replace("  window: 7d\n", "  window: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert len(caught.value.problems) == 2


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    path = write(tmp_path, GOOD.replace("  dir: ../public\n", "  dir: [../public\n"))
    result = run_cli("check", config=path)
    assert result.returncode == 2 and result.stderr.startswith(f"{path}:")
    assert "Traceback" not in result.stderr
    path = write(tmp_path, GOOD.replace("dedup:\n", "dedup:\n  window: 1d\n"))
    result = run_cli("check", config=path)
    assert result.returncode == 2 and "duplicate key" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_config_file(tmp_path):
    result = run_cli("check", config=tmp_path / "none.yaml")
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_once_and_publish_refuse_bad_config_before_doing_anything(tmp_path):
    path = write(tmp_path, GOOD.replace("    interval: 15m\n", "    interval: soon\n"))
    for command in ("once", "publish", "status"):
        result = run_cli(command, config=path)
        assert result.returncode == 2, command
        assert f"{path}:13: sources[0].interval" in result.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "public").exists()


def test_environment_variable_names_the_config(tmp_path):
    path = write(tmp_path, GOOD)
    result = run_cli("check", env={"AGGREGATOR_CONFIG": str(path)})
    assert result.returncode == 0 and str(path) in result.stdout


def test_shipped_default_config_is_valid():
    config = load_config(ROOT / "config" / "aggregator.yaml")
    assert config.sources and all(s.url.startswith("file:") for s in config.sources)
    assert all(Path(s.url[len("file://"):]).exists() for s in config.sources)


@pytest.mark.parametrize("config", ["good", "shipped"])
def test_the_fast_reader_gives_what_the_line_numbered_reader_gives(tmp_path, config):
    """Valid configs are read by libyaml's parser; only one with problems is read again for line numbers."""
    path = write(tmp_path, GOOD) if config == "good" else ROOT / "config" / "aggregator.yaml"
    text = path.read_text(encoding="utf-8")
    fast = _Loader(path, YAML(typ="safe").load(text)).load()
    numbered = _Loader(path, YAML(typ="rt").load(text)).load()
    assert repr(fast) == repr(numbered)
    assert load_config(path) == fast
