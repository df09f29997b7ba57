"""The pages in a real browser (headless Chromium through Selenium), served by the real `aggregator run`.

What a person sees: the source, the author and both dates in the visible text; nothing scrolls sideways on a
390 px phone; the console stays clean; every request goes to the aggregator's own server. Without Chromium,
chromedriver or selenium these tests skip with the reason, and fail instead when AGGREGATOR_REQUIRE_BROWSER=1
(.ci/run sets it and installs Chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import pytest

from conftest import run_cli
from pages_site import build_site
from test_daemon import daemons, fetch, free_port, wait_for  # noqa: F401 (daemons is a fixture)

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install -y chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("AGGREGATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aggregator-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`aggregator run` on the pages site, serving it; the base URL once the pages are published."""
    from test_daemon import Daemon

    directory = tmp_path_factory.mktemp("browser")
    port = free_port()
    config = build_site(directory, server={"listen": f"127.0.0.1:{port}"})
    run_cli("once", config=config, check=True)  # every source in, before the daemon serves (its polls find no news)
    daemon, out = Daemon(config), directory / "out"
    try:
        wait_for(lambda: fetch(port, "/index.html")[2] == (out / "index.html").read_bytes(), timeout=90,
                 what="the server", log=daemon.log)
        yield f"http://127.0.0.1:{port}", out
    finally:
        daemon.kill()


def _open(driver, url: str) -> str:
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get_log("performance")
    driver.get(url)
    return driver.find_element("tag name", "body").text


def _console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _frog_story(base: str, out) -> str:
    for path in (out / "stories").glob("*.html"):
        if "new species of frog" in path.read_text(encoding="utf-8"):
            return f"{base}/stories/{path.name}"
    raise AssertionError("no story page for the frog")


def _republished(text: str) -> str:
    found = re.search(r"republished (\d{4}-\d\d-\d\d)", text)
    assert found, text
    return found.group(1)


def test_a_person_sees_the_source_the_author_and_both_dates(browser, served):
    base, out = served
    index = _open(browser, base + "/")
    assert "World" in index and "Newest story 2021-09-27" in index and "شعر" in index, index
    assert browser.title == "Feeds"
    river = _open(browser, base + "/world.html")
    assert "Scientists discover new species of frog in Amazon rainforest" in river
    assert "First published 2021-09-27 by Alpha News" in river and "By Ana Lima, Bo Chen" in river
    assert _republished(river) and "Also at Beta Digest" in river
    persian = _open(browser, base + "/persian.html")
    assert "بشنو این نی چون شکایت می‌کند" in persian and "مولانا جلال‌الدین محمد بلخی" in persian
    assert "گنجینهٔ شعر فارسی (نمونه)" in persian and "republished" in persian
    story = _open(browser, _frog_story(base, out))
    assert "First published 2021-09-27 by Alpha News" in story and "By Ana Lima, Bo Chen" in story
    assert _republished(story) == _republished(river)
    assert "[image: The frog]" in story  # the remote image is a link, not a request


@pytest.mark.parametrize("width", [390, 1280])
def test_nothing_scrolls_sideways_and_the_console_stays_clean(browser, served, width):
    base, out = served
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        for url in (base + "/", base + "/world.html", base + "/persian.html", _frog_story(base, out),
                    base + "/archive/world/1.html"):
            _open(browser, url)
            scroll, client = browser.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert client <= width and scroll <= client, f"{url} scrolls sideways at {width}px: {scroll} > {client}"
            assert _console_errors(browser) == [], url
            elsewhere = [u for u in _requests(browser) if not u.startswith(base + "/")]
            assert elsewhere == [], f"{url} loaded {elsewhere}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_pages_are_served_as_html_with_validators_and_gzip(served):
    base, out = served
    port = int(base.rsplit(":", 1)[1])
    status, headers, body = fetch(port, "/world.html", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-encoding"] == "gzip" and headers["etag"]
    status, _, _ = fetch(port, "/world.html", **{"If-None-Match": headers["etag"], "Accept-Encoding": "gzip"})
    assert status == 304
    status, headers, body = fetch(port, "/")
    assert status == 200 and body == (out / "index.html").read_bytes()
    status, _, body = fetch(port, "/status")
    assert status == 200 and b">alpha</td><td>ok</td>" in body  # a file: source by its id, no local path
    assert str(out.parent).encode() not in body
