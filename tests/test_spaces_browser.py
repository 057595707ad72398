"""The two Spaces in a real headless browser: Debian's chromium driven by Playwright (never ``playwright install``).

Each test opens the page served by the ``classify_url`` / ``generate_url`` fixtures of ``conftest.py`` (the same over-fitted tiny classifier), acts as a
person would, waits for the boxes, and saves a screenshot under ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT, missing, require_module

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*HTTP_422")]

# both are installed by `make test` (chromium by its browser-deps step, playwright by the dev extra): missing there,
# this module fails to collect; in an ad-hoc run without SYNARTIFACT_STACK it is skipped. Checked here, before the
# Spaces' servers start.
if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
    missing(f"Debian's chromium at {CHROMIUM}", "make browser-deps (apt-get install chromium) installs it")
sync_api = require_module("playwright.sync_api", "the dev extra: pip install 'synartifact[dev]'")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_classify_page_shows_boxes_table_and_reward(page, classify_url):
    url = classify_url
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.set_input_files("#image-input input[type=file]", str(EXAMPLE))
    page.locator("#image-input img").first.wait_for()
    page.get_by_role("button", name="Find artifacts").click()
    # The annotated image: one box (mask) per artifact, and a legend entry per kind.
    boxes = page.locator("#annotated-output img.mask")
    boxes.nth(1).wait_for()
    assert boxes.count() == 2
    legend = page.locator("#annotated-output").inner_text()
    assert "Localized Blur" in legend and "Chromatic Irregularity" in legend
    page.get_by_text("2 artifacts found").wait_for()
    table = page.locator("#artifact-table").inner_text()
    assert "The face is blurred." in table and "object-agnostic" in table
    _screenshot(page, "space-classify")
    # The raw answer is there, inside the closed accordion.
    page.get_by_text("Raw model answer").click()
    assert "Localized Blur | [0.25, 0.10, 0.75, 0.55]" in page.locator("#raw-answer textarea").input_value()


def test_classify_page_repairs_and_shows_before_and_after(page, classify_url):
    page.goto(classify_url)
    page.wait_for_load_state("networkidle")
    assert "does not list the kinds" in page.locator("#kinds-notice").inner_text()  # no trained_kinds recorded
    page.set_input_files("#image-input input[type=file]", str(EXAMPLE))
    page.locator("#image-input img").first.wait_for()
    page.get_by_role("button", name="Repair", exact=True).click()
    for side in ("before", "after"):
        page.locator(f"#repair-{side} img.mask").nth(1).wait_for()
        legend = page.locator(f"#repair-{side}").inner_text()
        assert "Localized Blur" in legend and "Chromatic Irregularity" in legend
    page.get_by_text("No repair kept").wait_for()
    assert "0.846" in page.locator("#repair-summary").inner_text()
    _screenshot(page, "space-classify-repair")


def test_classify_page_says_what_is_wrong_with_a_corrupt_file(page, classify_url, tmp_path):
    url = classify_url
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4000)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.set_input_files("#image-input input[type=file]", str(bad))
    page.get_by_role("button", name="Find artifacts").click()
    toast = page.locator(".toast-body.error")
    toast.first.wait_for()
    assert "not an image that can be read" in toast.first.inner_text()
    assert "Traceback" not in page.content()
    page.wait_for_timeout(500)  # let the toast finish sliding in before the picture
    _screenshot(page, "space-classify-error")


def test_generate_page_shows_both_sides(page, generate_url):
    from playwright.sync_api import expect

    url = generate_url
    page.goto(url)
    # Gradio mounts the components after loading its config; typing before that can be lost.
    page.wait_for_load_state("networkidle")
    assert "Untrained demo models" in page.locator("#model-notice").inner_text()
    prompt = page.locator("#prompt textarea")
    prompt.fill("a hand holding a red apple, photograph")
    prompt.press("Tab")
    expect(prompt).to_have_value("a hand holding a red apple, photograph")
    page.get_by_role("button", name="Generate both").click()
    for side in ("base", "refined"):
        page.locator(f"#{side}-image img.mask").nth(1).wait_for()
        assert "2 artifacts found" in page.locator(f"#{side}-summary").inner_text()
        assert "Localized Blur" in page.locator(f"#{side}-table").inner_text()
    _screenshot(page, "space-generate")
