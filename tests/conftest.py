from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import io

import pytest
from ruamel.yaml import YAML

from feedserver import FeedServer

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def feed_server():
    server = FeedServer().start()
    yield server
    server.stop()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def write_config(directory: Path, sources: list[dict], outputs: list[dict] | None = None, **extra) -> Path:
    """A config file in `directory` with state and output folder beside it."""
    document = {
        "state": "state/aggregator.db",
        "output": {"dir": "out", "base_url": "http://feeds.test/"},
        "sources": sources,
        "outputs": outputs if outputs is not None else [{"id": "all", "title": "All stories"}],
        **extra,
    }
    path = directory / "aggregator.yaml"
    text = io.StringIO()
    YAML(typ="safe", pure=True).dump(document, text)
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


def run_cli(*args: str, config: Path | None = None, timeout: float = 120, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """The real command line, as a subprocess."""
    command = [sys.executable, "-m", "aggregator"]
    if config is not None:
        command += ["-c", str(config)]
    result = subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})}, cwd=str(ROOT))
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def status_json(config: Path) -> dict:
    result = run_cli("status", "--json", config=config, check=True)
    return {row["id"]: row for row in json.loads(result.stdout)["sources"]}
