"""Headless-Chromium checks of the built open-problems catalog page."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

PAGE = "book/open-problems.html"
BASELINE_PAGES = ("book/intro.html", "index.html")


@pytest.fixture
def new_errors(open_page, site_dir):
    """Console errors that the catalog page adds beyond those of a plain page of the same site.

    Site-wide noise (a theme message, a missing favicon) is the concern of the site-wide
    browser tests; these tests fail on anything the catalog itself causes, and on any error
    that mentions the catalog's script.
    """
    baseline: set[str] = set()
    for path in BASELINE_PAGES:
        if (site_dir / path).exists():
            plain = open_page(path)
            plain.wait_for_load_state("networkidle")  # let late requests (favicon) report
            baseline = set(plain.console_errors)
            break

    def _new(page) -> list[str]:
        # Chromium reports a missing favicon as a bare "Failed to load resource" on whichever
        # page asks first, so that message cannot be told apart by page; the catalog's own
        # files are checked directly instead (test_catalog_assets_load).
        return [
            e
            for e in page.console_errors
            if (e not in baseline and not e.startswith("Failed to load resource"))
            or "open-problems" in e
        ]

    return _new


def _catalog_path(site_dir) -> str:
    for candidate in (PAGE, "open-problems.html"):
        if (site_dir / candidate).exists():
            return candidate
    pytest.fail(f"no open-problems.html in {site_dir}")


def _visible_items(page):
    return page.locator(".op-item:visible")


def _shown_count(page) -> int:
    text = page.locator("#op-count").inner_text()
    match = re.match(r"(\d+) problems? match", text)
    assert match, f"unexpected count text: {text!r}"
    return int(match.group(1))


@pytest.fixture
def catalog(open_page, site_dir):
    page = open_page(_catalog_path(site_dir))
    page.wait_for_selector(".op-controls:not([hidden])")
    return page


def test_controls_are_labelled_and_count_is_live(catalog, new_errors):
    assert catalog.locator("fieldset.op-fieldset legend").count() == 1
    for control in ("op-search", "op-category", "op-difficulty", "op-chapter"):
        assert catalog.locator(f"label[for='{control}']").count() == 1, control
    count = catalog.locator("#op-count")
    assert count.get_attribute("aria-live") == "polite"
    total = catalog.locator(".op-item").count()
    assert total >= 200
    assert count.inner_text().startswith(f"{total} problems")
    assert new_errors(catalog) == []


def test_catalog_assets_load(catalog):
    # the stylesheet applied (items get a 4px left border) and the script ran (controls shown)
    width = catalog.locator(".op-item").first.evaluate(
        "el => getComputedStyle(el).borderLeftWidth"
    )
    assert width == "4px"
    assert catalog.locator(".op-controls").is_visible()
    for name in ("open-problems.css", "open-problems.js"):
        status = catalog.evaluate(
            "async (n) => (await fetch(document.querySelector(`[src*='${n}'],[href*='${n}']`)"
            ".getAttribute(n.endsWith('.js') ? 'src' : 'href'))).status",
            name,
        )
        assert status == 200, name


def test_difficulty_filter_shows_only_matching_rows(catalog, new_errors):
    total = catalog.locator(".op-item").count()
    catalog.select_option("#op-difficulty", "A")
    visible = _visible_items(catalog)
    n = visible.count()
    assert 0 < n < total
    for i in range(n):
        levels = visible.nth(i).get_attribute("data-levels").split()
        assert "A" in levels
    assert _shown_count(catalog) == n
    # every problem whose difficulty covers A is shown, and nothing else
    expected = catalog.locator(".op-item[data-levels~='A']").count()
    assert n == expected
    assert "difficulty=A" in catalog.url
    assert new_errors(catalog) == []


def test_search_narrows_results(catalog, new_errors):
    total = catalog.locator(".op-item").count()
    catalog.fill("#op-search", "induction")
    n = _visible_items(catalog).count()
    assert 0 < n < total
    assert _shown_count(catalog) == n
    catalog.fill("#op-search", "induction phase transition")
    m = _visible_items(catalog).count()
    assert 0 < m < n
    assert _shown_count(catalog) == m
    for i in range(m):
        text = _visible_items(catalog).nth(i).get_attribute("data-search")
        assert "induction" in text and "phase" in text and "transition" in text
    catalog.fill("#op-search", "zzzz-no-such-problem")
    assert _visible_items(catalog).count() == 0
    assert catalog.locator(".op-empty").is_visible()
    catalog.click("button.op-reset")
    catalog.wait_for_function(
        f"document.querySelectorAll('.op-item:not([hidden])').length === {total}"
    )
    assert new_errors(catalog) == []


def test_category_and_chapter_filters_combine(catalog, new_errors):
    catalog.select_option("#op-chapter", "chapters/induction/03-hooks")
    hooks = _visible_items(catalog).count()
    assert hooks > 0 and _shown_count(catalog) == hooks
    catalog.select_option("#op-category", "circuits-in-the-wild")
    both = _visible_items(catalog).count()
    assert 0 < both <= hooks
    for i in range(both):
        item = _visible_items(catalog).nth(i)
        assert item.get_attribute("data-category") == "circuits-in-the-wild"
        assert "chapters/induction/03-hooks" in item.get_attribute("data-chapters").split()


def test_deep_link_shows_and_highlights_problem(open_page, site_dir, new_errors):
    page = open_page(_catalog_path(site_dir) + "#problem-1-10")
    target = page.locator("#problem-1-10")
    target.wait_for(state="visible")
    assert "op-target" in target.get_attribute("class")
    assert target.locator(".op-number").inner_text() == "1.10"
    assert page.evaluate("document.activeElement.id") == "problem-1-10"
    box = target.bounding_box()
    viewport = page.viewport_size
    assert box is not None and 0 <= box["y"] < viewport["height"], box
    assert new_errors(page) == []


def test_deep_link_wins_over_filters_that_would_hide_it(open_page, site_dir, new_errors):
    # 1.10 has difficulty B; the query asks for D only, so the filter alone would hide it.
    page = open_page(_catalog_path(site_dir) + "?difficulty=D#problem-1-10")
    target = page.locator("#problem-1-10")
    target.wait_for(state="visible")
    assert page.locator("#op-difficulty").input_value() == "D"
    assert "op-target" in target.get_attribute("class")
    assert "1.10" in page.locator("#op-count").inner_text()
    for i in range(_visible_items(page).count()):
        item = _visible_items(page).nth(i)
        if item.get_attribute("id") != "problem-1-10":
            assert "D" in item.get_attribute("data-levels").split()
    # following another deep link moves the highlight
    page.evaluate("window.location.hash = '#problem-2-4'")
    page.locator("#problem-2-4.op-target").wait_for(state="visible")
    assert "op-target" not in page.locator("#problem-1-10").get_attribute("class")
    assert new_errors(page) == []


def test_chapter_page_links_into_catalog(open_page, site_dir, new_errors):
    chapter = "book/chapters/induction/index.html"
    if not (site_dir / chapter).exists():
        pytest.skip("induction chapter not built")
    page = open_page(chapter)
    links = page.locator(".op-chapter-list a[href*='open-problems.html#problem-']")
    if links.count() == 0:
        pytest.skip("the chapter page does not use {open-problems-for-chapter}")
    href = links.first.get_attribute("href")
    links.first.click()
    anchor = href.split("#", 1)[1]
    page.locator(f"#{anchor}.op-target").wait_for(state="visible")
    assert new_errors(page) == []
