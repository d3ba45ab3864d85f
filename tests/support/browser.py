"""Open a page in headless Chromium: how many of its images decoded, and a screenshot.

Tests that call :func:`render` are marked ``browser``: Chromium is optional on a developer's machine (they
skip) and required where ``MULTISTYLE_TEST_REQUIRE`` names ``browser`` (``.ci/run`` installs it and does).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image

from support.needs import chromium, require


def render(page: Path, scratch: Path, window: Tuple[int, int] = (1280, 1800)) -> Tuple[int, int, np.ndarray]:
    """``(images decoded, images on the page, screenshot pixels)`` for ``page`` (an HTML file)."""
    require("browser")  # the test is marked browser, which checks first
    binary = chromium()
    # A copy of the page with a probe appended: after load it writes how many images decoded.
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
             "document.title = 'loaded ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + "
             "' of ' + imgs.length; });</script>")
    harness = page.parent / "harness.html"
    harness.write_text(page.read_text().replace("</body>", probe + "</body>"))
    flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={scratch / 'profile'}", "--virtual-time-budget=5000"]
    try:
        dom = subprocess.run(flags + ["--dump-dom", harness.as_uri()], capture_output=True, text=True,
                             timeout=120).stdout
        shot = scratch / "page.png"
        subprocess.run(flags + [f"--screenshot={shot}", f"--window-size={window[0]},{window[1]}", page.as_uri()],
                       capture_output=True, timeout=120)
    finally:
        os.unlink(harness)
    match = re.search(r"<title>loaded (\d+) of (\d+)</title>", dom)
    assert match, dom[:300]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (window[1], window[0])
    return int(match.group(1)), int(match.group(2)), pixels


def driver(scratch: Path, window: Tuple[int, int] = (1400, 1800)):
    """A headless Chromium driven by Selenium through Debian's chromium-driver, given by path: Selenium then
    downloads nothing.  Its performance log records every network request the page makes."""
    require("browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from support.needs import chromedriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={scratch / 'selenium-profile'}", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver()))


def requested_urls(session, page: str = "") -> list:
    """Every URL that documents whose address starts with ``page`` asked for since the last call (from
    Chromium's performance log; the browser's own pages, such as its new tab, are other documents)."""
    import json

    urls = []
    for entry in session.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent" and \
                message["params"].get("documentURL", "").startswith(page):
            urls.append(message["params"]["request"]["url"])
    return urls
