from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import io

import pytest
from ruamel.yaml import YAML

from feedserver import FeedServer

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent
#: The PostgreSQL the tests use: trust auth on the development and CI machines.
POSTGRES = os.environ.get("AGGREGATOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


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


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test database's URL. Unreachable: skip, or fail when AGGREGATOR_REQUIRE_POSTGRES=1 (CI)."""
    import psycopg

    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = (f"PostgreSQL unreachable at {POSTGRES} ({str(exc).strip().splitlines()[0]}); "
                  "start it or set AGGREGATOR_TEST_POSTGRES")
        if os.environ.get("AGGREGATOR_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return POSTGRES


@pytest.fixture
def postgres_url(postgres_server: str):
    """A postgresql:// state URL of its own: a fresh schema of the test database, dropped afterwards."""
    import psycopg

    schema = f"aggtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_server}{'&' if '?' in postgres_server else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_location(request, tmp_path) -> str:
    """A fresh state on each backend: a SQLite file in tmp, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "aggregator.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(state_location):
    from aggregator.store import Store

    opened = Store(state_location)
    yield opened
    opened.close()
