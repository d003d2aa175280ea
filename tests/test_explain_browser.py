"""The report opened in a real browser: every figure loads, no console or page errors, a screenshot.

Runs headless Chromium through Playwright's Python package, driving the system browser
(Debian's ``chromium``) by its path: Playwright's own browser download is not used. Skipped,
with the reason, where ``playwright`` is not installed or no Chromium binary is found;
``.ci/run`` installs Chromium first and sets ``LAGLESS_REQUIRE_BROWSER=1``, which turns that
skip into a failure, so CI always runs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lagless.cli import main
from lagless.explain.attribute import attribute
from lagless.explain.datasets import save_npz
from lagless.explain.synthetic import planted_behaviours

try:
    from playwright import sync_api
except ImportError:
    sync_api = None

TINY_FLAGS = ["--window", "8", "--d-model", "16", "--layers", "1", "--heads", "2", "--code-dim", "8",
              "--codebook-size", "16", "--updates", "10", "--batch-size", "8", "--no-progress"]

# Reports whether each <img> finished loading with real pixels, and whether each <figure> holds one.
FIGURE_STATE = """() => ({
  images: Array.from(document.images).map(img => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight})),
  figures: Array.from(document.querySelectorAll('figure')).map(f => f.querySelectorAll('img').length),
  others: Array.from(document.querySelectorAll('svg, canvas, object, embed, iframe, video')).map(e => ({
    tag: e.tagName, width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height})),
})"""


def find_chromium() -> str | None:
    """The system Chromium: ``chromium`` or ``chromium-browser`` on PATH, else /usr/bin/chromium."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = find_chromium()
if sync_api is None:
    MISSING = "playwright is not installed (pip install -e '.[dev]')"
elif CHROMIUM is None:
    MISSING = ("no Chromium found (chromium, chromium-browser on PATH or /usr/bin/chromium); "
               "install it with `apt-get install -y chromium`")
else:
    MISSING = None


@pytest.fixture(scope="module", autouse=True)
def _browser_available():
    if MISSING is not None:
        if os.environ.get("LAGLESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LAGLESS_REQUIRE_BROWSER=1 but {MISSING}")
        pytest.skip(MISSING)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report made by `lagless explain discover` on a tiny planted dataset, with attribution."""
    root = tmp_path_factory.mktemp("browser")
    data, _ = planted_behaviours(600, seed=0)
    npz = save_npz(data, root / "planted.npz")
    out = root / "out"
    assert main(["explain", "discover", str(npz), "--out", str(out), *TINY_FLAGS, "--behaviours", "3"]) == 0
    attribute(out, bc=True, queries=20, updates=5, progress=False)
    return out / "report.html"


def open_in_chromium(html: Path, screenshot: Path) -> tuple[dict, list[str], list[str]]:
    """Load ``html`` in headless Chromium; return its figure state, console errors and page errors."""
    console_errors, page_errors = [], []
    with sync_api.sync_playwright() as pw:
        # As root Chromium refuses to start with its sandbox on.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            page.goto(html.resolve().as_uri(), wait_until="load")
            state = page.evaluate(FIGURE_STATE)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return state, console_errors, page_errors


def test_report_loads_in_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    state, console_errors, page_errors = open_in_chromium(report, shot)
    images = state["images"]
    # timeline, code graph, example segments and the attribution charts
    assert len(images) >= 5
    broken = [img["alt"] for img in images if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert state["figures"] and all(n >= 1 for n in state["figures"]), "a <figure> without an image"
    # The report draws its figures as PNG images; any other figure element must at least be drawn.
    empty = [e["tag"] for e in state["others"] if not (e["width"] > 0 and e["height"] > 0)]
    assert not empty, f"figure elements drawn with no size: {empty}"
    assert not console_errors, f"console errors: {console_errors}"
    assert not page_errors, f"page errors: {page_errors}"
    assert shot.is_file() and shot.stat().st_size > 0
    assert shot.read_bytes().startswith(b"\x89PNG")
