"""GET / and the page's files: markup and headers through TestClient, and the page itself in
headless Chromium (Selenium) against a real uvicorn.

The browser tests need the system Chromium and its driver (Debian: `apt-get install chromium
chromium-driver`; .ci/run installs them). Without them they are skipped, unless
DIGITGEN_REQUIRE_BROWSER=1 (set by .ci/run after installing them), where they fail instead.
DIGITGEN_SCREENSHOT=1 also writes the screenshot the README shows, reports/figures/page.png."""
from __future__ import annotations

import os
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from service import __version__
from service.routes.page import CONTENT_SECURITY_POLICY, STATIC_DIR, wants_html
from tests.conftest import BUNDLED, BUNDLED_NAMES, ROOT, live_server, make_client

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
CSP_DIRECTIVES = ("default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
                  "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'")
SCREENSHOT = ROOT / "reports" / "figures" / "page.png"


def security_headers_ok(response) -> None:
    csp = response.headers["content-security-policy"]
    assert {d.strip() for d in csp.split(";")} == set(CSP_DIRECTIVES), csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


# ---- the markup and the headers ---------------------------------------------------------------

class Markup(HTMLParser):
    """What the CSP and accessibility checks need from the page's HTML."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []       # attributes of each <script>, with its text as "_text"
        self.inline_styles: list[str] = []  # tags with a style= attribute, and <style> elements
        self.handlers: list[str] = []       # on*= attributes
        self.urls: list[str] = []           # every src= and href=
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.controls: list[tuple[str, dict, bool]] = []  # (tag, attrs, inside a <label>)
        self._label_depth = 0
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "style" in attrs or tag == "style":
            self.inline_styles.append(tag)
        self.handlers += [name for name in attrs if name.startswith("on")]
        self.urls += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        if tag == "script":
            self._in_script = {**attrs, "_text": ""}
            self.scripts.append(self._in_script)
        elif tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in ("input", "select", "textarea"):
            self.controls.append((tag, attrs, self._label_depth > 0))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None
        elif tag == "label":
            self._label_depth -= 1

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["_text"] += data


@pytest.fixture(scope="module")
def page_html(client):
    response = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    return response


def test_root_serves_the_page_to_browsers_with_security_headers(page_html):
    assert page_html.headers["content-type"].startswith("text/html")
    security_headers_ok(page_html)
    assert page_html.headers["vary"] == "Accept"
    assert page_html.headers["cache-control"] == "no-cache"


def test_the_page_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere(page_html):
    markup = Markup()
    markup.feed(page_html.text)
    assert markup.scripts, "the page has no script"
    for script in markup.scripts:
        assert script.get("src", "").startswith("/ui/") and not script["_text"].strip(), script
    assert markup.inline_styles == [] and markup.handlers == []
    for url in markup.urls:  # same origin only: no CDN, works offline
        assert url.startswith(("/", "#")) and not url.startswith("//"), url


def test_every_control_has_a_label(page_html):
    markup = Markup()
    markup.feed(page_html.text)
    assert len(markup.controls) >= 10
    for tag, attrs, inside_label in markup.controls:
        labelled = inside_label or attrs.get("id") in markup.label_for or attrs.get("aria-label")
        assert labelled, (tag, attrs)
    assert markup.label_for <= markup.ids  # every label points at something


def test_the_page_links_only_files_the_service_has(client, page_html):
    markup = Markup()
    markup.feed(page_html.text)
    assets = [url for url in markup.urls if url.startswith("/ui/")]
    assert {"/ui/page.js", "/ui/page.css", "/ui/favicon.svg"} <= set(assets)
    for url in assets:
        assert client.get(url).status_code == 200, url


def test_root_gives_a_json_index_to_api_clients(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["name"] == "digitgen" and body["version"] == __version__
    assert body["api_key_required"] is False
    links = body["links"]
    for name, path in (("docs", "/docs"), ("openapi", "/openapi.json"), ("models", "/models"), ("sample", "/sample"),
                       ("dataset", "/dataset"), ("healthz", "/healthz"), ("readyz", "/readyz")):
        assert links[name] == path
    for path in links.values():  # every link answers (GET-only ones here; POST ones give 405)
        assert client.get(path, headers={"Accept": "application/json"}).status_code in (200, 405), path
    operations = client.get("/openapi.json").json()["paths"]
    unlinked = {path for path in operations if "{" not in path} - set(links.values())
    assert not unlinked, f"the index lacks {unlinked}"
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize("accept,html", [
    (BROWSER_ACCEPT, True),
    ("text/html", True),
    ("application/json", False),
    ("application/json, text/html;q=0.5", False),
    ("Text/HTML; level=1, application/json", True),  # the first media range decides
    ("*/*", False),  # curl, scripts
    ("", False),
    ("text/*", True),
    ("application/xhtml+xml, text/html", False),
])
def test_accept_picks_html_or_json(accept, html):
    assert wants_html(accept) is html


def test_head_on_the_page(client, page_html):
    head = client.head("/", headers={"Accept": BROWSER_ACCEPT})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == page_html.headers["content-length"]
    assert head.headers["content-type"] == page_html.headers["content-type"]
    security_headers_ok(head)
    assert client.head("/ui/page.js").status_code == 200


def test_the_page_is_not_part_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(path.startswith("/ui") for path in paths)


@pytest.mark.parametrize("name,media_type", [("page.js", "text/javascript"), ("page.css", "text/css"),
                                             ("favicon.svg", "image/svg+xml"), ("index.html", "text/html")])
def test_static_files_are_served_with_nosniff_and_csp(client, name, media_type):
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.content == (STATIC_DIR / name).read_bytes()
    security_headers_ok(response)
    assert response.headers["cache-control"] == "no-cache" and "etag" in response.headers
    again = client.get(f"/ui/{name}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_missing_static_files_are_json_404s_with_the_headers(client):
    for path in ("/ui/nope.js", "/ui/", "/ui/../main.py", "/ui/%2e%2e/main.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    security_headers_ok(client.get("/ui/nope.js"))
    refused = client.post("/ui/page.js")
    assert refused.status_code == 405 and refused.json()["code"] == "method_not_allowed"


def test_the_page_and_its_files_are_public_when_the_api_needs_a_key(tiny_weights):
    with make_client(tiny_weights, api_key="s3cret") as c:
        assert c.get("/models").status_code == 401
        assert c.get("/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200
        assert c.get("/ui/page.js").status_code == 200
        index = c.get("/", headers={"Accept": "application/json"}).json()
        assert index["api_key_required"] is True


def test_the_script_keeps_the_key_in_memory_only():
    script = (STATIC_DIR / "page.js").read_text()
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "indexedDB", "eval(", "innerHTML"):
        assert forbidden not in script, forbidden
    assert "Authorization" in script and "Bearer" in script


# ---- the page in a browser --------------------------------------------------------------------

CHROMIUM = os.environ.get("DIGITGEN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DIGITGEN_CHROMEDRIVER", "/usr/bin/chromedriver")


def _no_browser(reason: str):
    if os.environ.get("DIGITGEN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (DIGITGEN_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def start_browser(width: int = 1280, height: int = 1000):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed: pip install -e '.[dev]'")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (Path(path).is_file() and os.access(path, os.X_OK))]
    if missing:
        _no_browser(f"no {' or '.join(missing)}: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
                     "--lang=en-US", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def bundled_server():
    """The service with the bundled models, as people run it."""
    with live_server({"DIGITGEN_WEIGHTS_DIR": str(BUNDLED), "DIGITGEN_API_KEY": ""}) as (base, _proc):
        yield base


def wait_for(driver, condition, what: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def open_page(driver, base: str) -> None:
    from selenium.common.exceptions import TimeoutException
    driver.get(f"{base}/")
    try:
        wait_for(driver, lambda d: js(d, "return document.body.dataset.ready === 'true'"), "the page did not get ready")
    except TimeoutException:
        errors = [entry["message"] for entry in console_errors(driver)]
        pytest.fail(f"the page did not get ready; console errors: {errors}")


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def image_ink(driver, element_id: str) -> dict:
    """The <img>'s natural size and how many of its pixels are not black (drawn to a canvas)."""
    return js(driver, """
        const img = document.getElementById(arguments[0]);
        if (!img.complete || !img.naturalWidth) return {width: 0, lit: 0};
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 0) lit += 1;
        return {width: img.naturalWidth, height: img.naturalHeight, lit};
    """, element_id)


def draw(driver, strokes: list[list[tuple[int, int]]]) -> None:
    """Strokes on the drawing canvas; points are offsets in CSS pixels from its centre."""
    from selenium.webdriver.common.action_chains import ActionChains
    pad = driver.find_element("id", "pad")
    for stroke in strokes:
        actions = ActionChains(driver, duration=10)
        (x, y), rest = stroke[0], stroke[1:]
        actions.move_to_element_with_offset(pad, x, y).click_and_hold()
        for nx, ny in rest:
            for k in range(1, 5):  # a few moves per segment, as a hand makes
                actions.move_to_element_with_offset(pad, round(x + (nx - x) * k / 4), round(y + (ny - y) * k / 4))
            x, y = nx, ny
        actions.release().perform()


SEVEN = [[(-70, -80), (70, -80), (-5, 85)], [(-25, 5), (45, 5)]]
THREE = [[(-60, -80), (0, -95), (50, -70), (40, -20), (-10, 0), (45, 20), (55, 65), (0, 95), (-60, 75)]]


def test_the_page_loads_without_console_errors(browser, bundled_server):
    started = time.monotonic()
    open_page(browser, bundled_server)
    loaded = time.monotonic() - started
    assert console_errors(browser) == []
    rows = js(browser, "return [...document.querySelectorAll('#models-table tbody tr th')].map(th => th.textContent)")
    assert set(rows) == set(BUNDLED_NAMES)
    headings = js(browser, "return [...document.querySelectorAll('#models-table thead th')].map(th => th.textContent)")
    assert "FID ↓" in headings and "Parameters" in headings and "Data" in headings
    options = js(browser, "return [...document.getElementById('sample-model').options].map(o => o.value)")
    assert set(options) == {n for n in BUNDLED_NAMES if not n.endswith("classifier")}  # generative models only
    assert js(browser, "return [...document.getElementById('draw-model').options].map(o => o.value)") == [
        "fashion-vae-seed", "fashion-vae", "vae-exemplar", "vae-normal", "vae-seed", "vae"]
    assert js(browser, "return document.getElementById('draw-model').value") == "vae"
    assert "Ready" in browser.find_element("id", "status").text
    assert loaded < 20, f"the page took {loaded:.1f} s to get ready"


def test_sampling_renders_an_image_and_the_same_seed_gives_the_same_one(browser, bundled_server):
    from selenium.webdriver.support.ui import Select
    open_page(browser, bundled_server)
    first = image_ink(browser, "sample-img")
    assert first["width"] == 4 * 30 + 2 and first["lit"] > 100  # a 4 x 4 grid: 28 px images between 2 px gutters
    seed = browser.find_element("id", "sample-seed")
    seed.clear()
    seed.send_keys("7")
    Select(browser.find_element("id", "sample-n")).select_by_value("1")
    Select(browser.find_element("id", "sample-digit")).select_by_value("3")
    browser.find_element("id", "sample-go").click()
    wait_for(browser, lambda d: d.find_element("id", "sample-caption").text.startswith("Seed 7 "), "no sample for seed 7")
    wait_for(browser, lambda d: d.find_element("id", "sample").get_attribute("aria-busy") == "false", "sampling hung")
    one = image_ink(browser, "sample-img")
    assert one["width"] == 28 and one["lit"] > 20
    shown = js(browser, "return document.getElementById('sample-img').src")
    browser.find_element("id", "sample-again").click()
    wait_for(browser, lambda d: "identical" in d.find_element("id", "sample-check").text, "resampling did not match")
    assert "seed 7" in browser.find_element("id", "sample-check").text
    assert js(browser, "return document.getElementById('sample-img').src") != shown  # a fresh answer, same bytes
    assert image_ink(browser, "sample-img") == one
    hrefs = js(browser, "return [...document.querySelectorAll('#sample-links a')].map(a => a.getAttribute('href'))")
    assert "/sample?model=gan&n=1&seed=7&digit=3" in hrefs
    assert "/dataset?model=gan&seed=7&n=1000&format=npz&digits=3" in hrefs
    browser.find_element("id", "sample-random").click()
    wait_for(browser, lambda d: not d.find_element("id", "sample-caption").text.startswith("Seed 7 "), "Random kept the seed")
    wait_for(browser, lambda d: d.find_element("id", "sample").get_attribute("aria-busy") == "false", "sampling hung")
    assert browser.find_element("id", "sample-error").text == ""
    assert console_errors(browser) == []


def test_drawing_a_digit_reconstructs_it_and_shows_its_latent(browser, bundled_server):
    open_page(browser, bundled_server)
    draw(browser, SEVEN)
    # reconstruction starts by itself shortly after the pen lifts
    wait_for(browser, lambda d: image_ink(d, "recon-img")["width"] > 0, "no reconstruction")
    wait_for(browser, lambda d: "classifier reads" in d.find_element("id", "verdict").text, "no verdict")
    picture = image_ink(browser, "recon-img")
    assert picture["width"] == 2 * 30 + 2 and picture["lit"] > 40  # input | reconstruction
    bars = js(browser, "return document.querySelectorAll('#latent-chart rect').length")
    assert bars == 32  # vae's latent_dim
    labels = js(browser, "return [...document.querySelectorAll('#latent-chart text.dim')].map((t) => t.textContent)")
    assert labels == ["0", "4", "8", "12", "16", "20", "24", "28", "31"]  # 32 numbers would overlap
    digit = browser.find_element("css selector", "#verdict strong").text
    assert digit in "0123456789" and len(digit) == 1
    assert browser.find_element("id", "draw-error").text == ""
    assert console_errors(browser) == []


def test_the_slider_walks_the_interpolation(browser, bundled_server):
    from selenium.webdriver.common.keys import Keys
    open_page(browser, bundled_server)
    wait_for(browser, lambda d: image_ink(d, "interp-img")["width"] > 0, "no interpolation")
    slider = browser.find_element("id", "interp-slider")
    assert slider.get_attribute("max") == "9"
    first = js(browser, "return document.getElementById('interp-img').src")
    slider.send_keys(Keys.END)  # the keyboard moves it, as it would for a person
    wait_for(browser, lambda d: js(d, "return document.getElementById('interp-img').src") != first, "slider did nothing")
    assert "Step 10 of 10" in browser.find_element("id", "interp-caption").text
    last = js(browser, "return document.getElementById('interp-img').src")
    slider.send_keys(Keys.ARROW_LEFT)
    wait_for(browser, lambda d: js(d, "return document.getElementById('interp-img').src") not in (first, last),
             "the step before the last is not shown")
    assert "Step 9 of 10" in browser.find_element("id", "interp-caption").text
    assert js(browser, "return document.querySelectorAll('#interp-strip img').length") == 10
    assert console_errors(browser) == []


def test_interpolating_between_two_drawings(browser, bundled_server):
    open_page(browser, bundled_server)
    draw(browser, SEVEN)
    wait_for(browser, lambda d: image_ink(d, "recon-img")["width"] > 0, "no reconstruction")
    browser.find_element("id", "draw-as-a").click()
    browser.find_element("id", "draw-clear").click()
    draw(browser, THREE)
    browser.find_element("id", "draw-as-b").click()
    wait_for(browser, lambda d: "A and B" in d.find_element("id", "draw-ab").text, "drawings not saved")
    assert browser.find_element("css selector", 'input[name="interp-mode"][value="drawings"]').is_selected()
    before = js(browser, "return document.getElementById('interp-img').src")
    browser.find_element("id", "interp-go").click()
    wait_for(browser, lambda d: "drawing A → drawing B" in d.find_element("id", "interp-caption").text, "no interpolation")
    assert js(browser, "return document.getElementById('interp-img').src") != before
    assert browser.find_element("id", "interp-error").text == ""
    assert console_errors(browser) == []


def test_the_page_in_use_draws_resamples_and_interpolates(browser, bundled_server):
    """The page as a person uses it, with no console error; DIGITGEN_SCREENSHOT=1 also writes the
    README's picture of it, reports/figures/page.png."""
    from selenium.webdriver.common.keys import Keys
    open_page(browser, bundled_server)
    draw(browser, THREE)
    wait_for(browser, lambda d: "classifier reads" in d.find_element("id", "verdict").text, "no verdict")
    browser.find_element("id", "sample-again").click()
    wait_for(browser, lambda d: "identical" in d.find_element("id", "sample-check").text, "resampling did not match")
    slider = browser.find_element("id", "interp-slider")
    for _ in range(4):
        slider.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: "Step 5 of 10" in d.find_element("id", "interp-caption").text, "slider did nothing")
    assert console_errors(browser) == []
    if os.environ.get("DIGITGEN_SCREENSHOT") != "1":
        return
    js(browser, "document.activeElement.blur(); window.scrollTo(0, 0)")
    height = js(browser, "return document.documentElement.scrollHeight")
    # the whole page in one picture: a viewport as tall as the page, shot after the next two frames paint
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.execute_async_script("const done = arguments[0]; "
                                     "requestAnimationFrame(() => requestAnimationFrame(() => done()))")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_page_asks_for_the_key_and_keeps_it_in_memory(tiny_weights):
    driver = start_browser()
    try:
        with live_server({"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "DIGITGEN_API_KEY": "s3cret"}) as (base, _proc):
            driver.get(f"{base}/")
            wait_for(driver, lambda d: d.find_element("id", "key-form").is_displayed(), "no key prompt after a 401")
            key = driver.find_element("id", "key-input")
            assert key.get_attribute("type") == "password"
            key.send_keys("wrong\n")
            wait_for(driver, lambda d: "not accepted" in d.find_element("id", "key-error").text, "a wrong key was taken")
            driver.find_element("id", "key-input").send_keys("s3cret\n")
            wait_for(driver, lambda d: js(d, "return document.body.dataset.ready === 'true'"), "the key did not open the page")
            assert not driver.find_element("id", "key-form").is_displayed()
            assert image_ink(driver, "sample-img")["width"] > 0
            assert js(driver, "return localStorage.length + sessionStorage.length") == 0
            assert "s3cret" not in js(driver, "return document.cookie + location.href + document.body.innerHTML")
    finally:
        driver.quit()


def test_the_class_menu_follows_the_chosen_models_dataset(browser, bundled_server):
    from selenium.webdriver.support.ui import Select
    open_page(browser, bundled_server)
    Select(browser.find_element("id", "sample-model")).select_by_value("fashion-gan")
    assert browser.find_element("id", "sample-digit-label").text == "Class"
    names = js(browser, "return [...document.getElementById('sample-digit').options].map(o => o.textContent)")
    assert names[8] == "7 · Sneaker" and names[0] == "any"
    assert "fashion-classifier" in browser.find_element("id", "digit-note").text
    Select(browser.find_element("id", "sample-model")).select_by_value("gan")
    assert browser.find_element("id", "sample-digit-label").text == "Digit"
    assert js(browser, "return document.getElementById('sample-digit').options[8].textContent") == "7"
