"""A full disk, a locked state file and a read-only one: old outputs stay, errors are one line and visible."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from conftest import ROOT, run_cli, status_json, write_config
from hostile import ATOM, output_entries, rss, rss_item, run_cli_measured

MARKUP = "<p><b><i>x</i></b></p>" * 800  # escaped in the output, so the output outgrows the store (and its fingerprints)


def _feed(count: int) -> bytes:
    import html

    return rss("".join(rss_item(f"Story {i}", f"https://disk.example/{i}", html.escape(MARKUP))
                       for i in range(count)))


def test_a_full_disk_keeps_the_old_output_and_reports_it(tmp_path):
    (tmp_path / "feed.xml").write_bytes(_feed(40))  # enough stories that the output outgrows the state's tables
    config = write_config(tmp_path, [{"id": "disk", "url": "file:feed.xml"}])
    run_cli("once", config=config, check=True)
    output = tmp_path / "out" / "all.atom"
    old = output.read_bytes()
    store_size = sum(p.stat().st_size for p in (tmp_path / "state").iterdir())
    assert len(old) > 1.5 * store_size  # the premise: a limit between the two fails only the output
    limit = (len(old) + store_size) // 2

    (tmp_path / "feed.xml").write_bytes(_feed(41))
    result = run_cli_measured("once", config=config, file_size_limit=limit)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "all.atom" in line and "free some disk space" in line and "Traceback" not in line
    assert output.read_bytes() == old
    assert sorted(p.name for p in output.parent.iterdir()) == [  # nothing half-written beside them
        "all.atom", "all.html", "feed.xsl", "index.html", "index.opml", "pages.css", "stories"]
    assert not [p.name for p in (output.parent / "stories").iterdir() if p.name.startswith(".")]
    status = json.loads(run_cli("status", "--json", config=config, check=True).stdout)
    assert status["sources"][0]["state"] == "ok" and status["sources"][0]["entries"] == 41
    [row] = status["outputs"]
    assert row["id"] == "all" and "all.atom" in row["last_error"] and row["failed_at"]
    assert "publish failed" in run_cli("status", config=config, check=True).stdout

    run_cli("once", config=config, check=True)
    assert len(output_entries(output)) == 41
    assert json.loads(run_cli("status", "--json", config=config, check=True).stdout)["outputs"][0]["last_error"] is None


def test_a_locked_state_file_gives_a_one_line_error(tmp_path):
    (tmp_path / "feed.xml").write_bytes(_feed(1))
    config = write_config(tmp_path, [{"id": "a", "url": "file:feed.xml"}])
    run_cli("once", config=config, check=True)
    (tmp_path / "feed.xml").write_bytes(_feed(2))
    holder = sqlite3.connect(tmp_path / "state" / "aggregator.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = run_cli("once", config=config)
    finally:
        holder.close()
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "aggregator.db is locked by another process" in line


def _without_root_overrides():
    """Root ignores file modes: drop the capabilities that let it (prctl PR_CAPBSET_DROP) before exec."""
    if os.geteuid() != 0:
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "cannot drop capabilities")

    return drop


def test_a_read_only_state_file_gives_a_one_line_error(tmp_path):
    directory = tmp_path
    try:
        (directory / "feed.xml").write_bytes(_feed(1))
        config = write_config(directory, [{"id": "a", "url": "file:feed.xml"}])
        run_cli("once", config=config, check=True)
        (directory / "feed.xml").write_bytes(_feed(2))
        state = directory / "state"
        os.chmod(state / "aggregator.db", 0o444)
        os.chmod(state, 0o555)
        result = subprocess.run([sys.executable, "-m", "aggregator", "-c", str(config), "once"], cwd=str(ROOT),
                                capture_output=True, text=True, timeout=60, preexec_fn=_without_root_overrides())
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert "aggregator.db is read-only" in line
    finally:
        os.chmod(directory / "state", 0o755)


def test_a_reader_that_closes_the_pipe_early_stops_no_command(tmp_path):
    """`aggregator status | head -1`: stdout is a pipe nobody reads any more. No traceback, the command still
    does its work (`once` polls and publishes) and exits as it would have."""
    (tmp_path / "feed.xml").write_bytes(_feed(3))
    config = write_config(tmp_path, [{"id": "pipe", "url": "file:feed.xml"}])
    for command in (["once"], ["status"], ["status", "--json"], ["check"], ["--help"], ["opml", "export"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # gone before the first line: every write to stdout fails with EPIPE
        try:
            result = subprocess.run([sys.executable, "-m", "aggregator", "-c", str(config), *command], cwd=str(ROOT),
                                    stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
        finally:
            os.close(write_end)
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
    assert len(output_entries(tmp_path / "out" / "all.atom")) == 3
