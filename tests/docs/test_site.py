"""The documentation site as a reader sees it: built with --strict, every page opened in headless Chromium,
every image loaded, no console error."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading

import pytest

from support import REPOSITORY, browser
from support.needs import require

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require("docs")
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "COLUMNS": "100", "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_every_page_loads_its_images_without_console_errors(site, tmp_path):
    folder, url = site
    pages = sorted(p.relative_to(folder).parent.as_posix() for p in folder.rglob("index.html")
                   if "assets" not in p.parts)
    assert len(pages) >= 15, pages
    session = browser.driver(tmp_path)
    try:
        for page in pages:
            session.get(url + ("" if page == "." else page + "/"))
            images = session.execute_script(
                "return [...document.images].map(i => [i.currentSrc, i.complete && i.naturalWidth > 0])")
            broken = [src for src, ok in images if not ok]
            assert not broken, f"{page}: images that did not load: {broken}"
            errors = [e for e in session.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"{page}: {errors}"
        outside = [u for u in browser.requested_urls(session, url) if not u.startswith((url, "data:", "blob:"))]
        assert outside == [], "the site loads things from elsewhere"
        session.get(url + "guides/serve/")  # the pages with pictures have them
        assert session.execute_script("return document.images.length") >= 1
    finally:
        session.quit()


def test_generated_pages_follow_the_code(site):
    from multistyle.cli import build_parser
    from multistyle.settings import PRESETS

    folder, _ = site
    cli = (folder / "reference" / "cli" / "index.html").read_text()
    for name in ("run", "compare", "batch", "bench", "serve", "explain", "weights", "presets", "backends"):
        assert f"multistyle {name}" in cli
    assert "--max-upload-mb" in cli and build_parser().prog == "multistyle"
    from multistyle.maths import MATHS, WHY_PIXELS_DRIFT

    concepts = (folder / "concepts" / "agreement" / "index.html").read_text()
    for _, title, _, _ in MATHS:  # one copy of the prose: the table compare, explain and serve render
        assert title in concepts, title
    assert WHY_PIXELS_DRIFT.split(":")[1][:60] in concepts
    presets = (folder / "guides" / "presets" / "index.html").read_text()
    for name, values in PRESETS.items():
        assert f"<th>{name}</th>" in presets
    from multistyle.backend import BUILTIN_BACKENDS
    from multistyle.optim import offered

    backends = (folder / "reference" / "backends" / "index.html").read_text()
    for name, spec in BUILTIN_BACKENDS.items():  # one row per backend: its extra, formats, optimizers
        row = backends.split(f"<td><code>{name}</code></td>")[1].split("</tr>")[0]
        assert f"multistyle[{spec.extra}]" in row, name
        assert all(f"<code>{suffix}</code>" in row for suffix in spec.weight_suffixes), name
        assert all(f"{opt}: <code>{code}</code>" in row for opt, code in offered(spec.native_optimizers).items()), name
