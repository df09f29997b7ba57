"""Screenshots of the HTML pages, as README shows them: index, a river and a story page, desktop and phone.

    .venv/bin/python docs/screenshots.py        # writes docs/screenshots/{index,river,story}-{desktop,phone}.png

Runs the sample configuration (config/aggregator.yaml, a copy in a temporary folder so nothing here is
touched) through `aggregator once`, serves it with the real `aggregator run` on a free port, and has headless
Chromium (Debian's `chromium` and `chromium-driver`, through selenium) photograph each page at 1280 and
390 px wide. The river is `world`, whose sources write in both directions; the story is the first
left-to-right story of that river.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
SIZES = {"desktop": (1280, 900, False), "phone": (390, 844, True)}


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="aggregator-shots-") as temporary:
        folder = Path(temporary)
        shutil.copytree(ROOT / "config", folder / "config")
        port = _free_port()
        config = folder / "config" / "aggregator.yaml"
        config.write_text(config.read_text(encoding="utf-8").replace("127.0.0.1:8080", f"127.0.0.1:{port}"),
                          encoding="utf-8")
        command = [sys.executable, "-m", "aggregator", "-c", str(config)]
        subprocess.run(command + ["once"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        daemon = subprocess.Popen(command + ["run"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base + "/index.html")
            pages = {"index": base + "/", "river": base + "/world.html",
                     "story": base + "/" + _first_ltr_story(folder / "feeds" / "world.html")}
            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium")
            for flag in FLAGS + (f"--user-data-dir={folder / 'profile'}",):
                options.add_argument(flag)
            driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
            try:
                TARGET.mkdir(parents=True, exist_ok=True)
                for size, (width, height, mobile) in SIZES.items():
                    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
                    for name, url in pages.items():
                        driver.get(url)
                        path = TARGET / f"{name}-{size}.png"
                        driver.save_screenshot(str(path))
                        print(f"{path.relative_to(ROOT)}: {url.removeprefix(base)}")
            finally:
                driver.quit()
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    return 0


def _first_ltr_story(river: Path) -> str:
    text = river.read_text(encoding="utf-8")
    for article in re.findall(r'<article class="entry" lang="([^"]*)"[^>]*>(.*?)</article>', text, re.S):
        if article[0] and not article[0].startswith("fa"):
            return re.search(r'href="(stories/[^"]+\.html)"', article[1]).group(1)
    raise SystemExit("no left-to-right story in the river")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
