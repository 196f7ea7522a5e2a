"""Checks on the built site in _build/html (run by `make test` after the HTML build; marked `site`)."""

import functools
import http.server
import re
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
pytestmark = [
    pytest.mark.site,
    pytest.mark.skipif(not (HTML / "index.html").exists(), reason="the HTML is not built (run `make html`)"),
]


class _Assets(HTMLParser):
    """Collect every URL a page *loads* (scripts, styles, images, fonts, frames) — not the links it offers."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload", "prefetch")):
                self.urls.append(a["href"])
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])


def _external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url))


def test_no_page_loads_anything_from_another_host():
    offenders = {}
    for page in HTML.rglob("*.html"):
        parser = _Assets()
        parser.feed(page.read_text(errors="replace"))
        bad = [u for u in parser.urls if _external(u)]
        if bad:
            offenders[str(page.relative_to(HTML))] = bad
    assert not offenders, offenders
    for css in HTML.rglob("*.css"):
        imports = re.findall(r"@import\s+url\(['\"]?(https?:)?//", css.read_text(errors="replace"))
        assert not imports, css
    mathjax = HTML / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.exists(), "MathJax is bundled"


def test_status_page_lists_every_page_and_claim():
    text = (HTML / "book" / "status.html").read_text()
    for page in ("ch01_concepts", "ch02_1_exposure"):
        assert page in text
    assert "passed" in text and "claim" in text.lower()


def test_chapter_pages_have_figures_exercises_and_no_errors():
    page = (HTML / "book" / "ch02_1_exposure.html").read_text()
    assert page.count("<img") >= 2
    assert "exercise" in page and "solution" in page
    assert "Traceback" not in page and "Error" not in re.sub(r"error bars?|errors?\b", "", page)
    assert "colab.research.google.com" in page, "launch buttons"


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("chromium and chromedriver are needed (make browser installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_chapter_renders_in_a_browser(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/book/ch02_1_exposure.html")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc, i.complete && i.naturalWidth > 0])"
    )
    figures = [ok for src, ok in images if "_images" in src or src.startswith("data:")]
    assert len(figures) >= 2 and all(figures), images
    wait.until(lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length") > 0)
    (ROOT / "_build" / "screenshots").mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ROOT / "_build" / "screenshots" / "ch02_1_exposure.png"))


def test_search_finds_a_word_from_the_chapter(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/search.html?q=paraphrase")
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script(
                "return Array.from(document.querySelectorAll('#search-results a')).map(a => a.href).join(' ')"
            ).count("ch02_1_exposure")
            > 0
        )
    )
