"""The console in a real browser: Debian's headless Chromium, driven by Playwright.

An admin signs in with its token and an institution peer with its password (it must not see
other institutions), the routing matrix of the example tree is read as a person would, a
connection is probed against a local Moodle-shaped peer with the "Probe now" button (the
page's script, under the console's Content-Security-Policy), a refused reload appears after
a broken tree and SIGHUP, and the admin logs out. On every page: axe-core finds no serious or
critical violation, the HTML holds no resolved secret value, and a screenshot is saved (to
``tests/artifacts/console/``, ignored by git). Skips, saying why, when Chromium cannot start.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from console_helpers import (
    BASIC_PASSWORD,
    BASIC_USER,
    LOOPBACK_TOKEN,
    SECRETS,
    ConsoleSite,
    console_site,
)
from peers import REQUESTS
from tree_helpers import REPO

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "axe" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("RPCD_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}); pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (.ci/install-test-tools)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.skip(f"chromium did not start: {str(exc).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


Site = ConsoleSite


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with console_site(tmp_path_factory.mktemp("console-browser")) as console:
        yield console


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@dataclass
class Visitor:
    """One browser context (its own cookies) and the checks every page gets."""

    page: Any
    url: str
    artifacts: Path
    name: str
    shots: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, label: str) -> str:
        """axe, secrets and a screenshot of the page as it is now; its HTML."""
        html: str = self.page.content()
        text = html + unescape(html)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"{label}: the page holds a resolved secret value"
        self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"{label}: axe-core found {bad}"
        shot = self.artifacts / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        self.shots.append(shot.name)
        return html

    def open(self, path: str, label: str) -> str:
        self.page.goto(self.url + path)
        return self.check(label)


@pytest.fixture
def visitor(browser: Any, site: Site, artifacts: Path, request: pytest.FixtureRequest) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    name = "admin" if "admin" in request.node.name else "peer"
    visitor = Visitor(page, site.daemon.url, artifacts, name)

    def on_console(message: Any) -> None:
        # A page's own 401/404 is its answer (the response check below sees sub-resources).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            visitor.problems.append(message.text)  # a CSP refusal, a script error

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            visitor.problems.append(f"{response.status} for {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda error: visitor.problems.append(str(error)))
    yield visitor
    context.close()
    assert not visitor.problems, f"the browser reported errors: {visitor.problems}"


def sign_in_with_token(visitor: Visitor, token: str) -> None:
    page = visitor.page
    page.goto(visitor.url + "/ui")
    assert page.url.endswith("/ui/login")
    visitor.check("login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url("**/ui")


def test_admin_reads_routing_probes_sees_a_refused_reload_and_logs_out(
    visitor: Visitor, site: Site
) -> None:
    page = visitor.page
    sign_in_with_token(visitor, LOOPBACK_TOKEN)
    html = visitor.check("overview")
    assert page.get_by_role("heading", level=1).inner_text() == "Overview"
    assert "Signed in as loopback" in page.locator("header").inner_text()
    assert "✔ ON" in html
    assert page.get_by_label("Refresh this page every 15 s").is_visible()  # the script ran

    # Keyboard: the first Tab reaches the skip link, Enter moves to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # The question an admin comes with, asked on the overview: who serves uni-b for Moodle?
    page.get_by_label("institution", exact=True).fill("uni-b")
    page.get_by_label("class", exact=True).fill("moodle_users")
    page.get_by_role("button", name="Show routing").click()
    answer = page.get_by_role("table", name="Connections tried, in order").locator("tbody td")
    assert answer.count() == 1 and answer.get_by_role("link").all_inner_texts() == ["uni-b"]

    # Routing: the whole matrix; read the same cell off it.
    page.get_by_role("link", name="Routing").click()
    visitor.check("routing")
    table = page.get_by_role("table", name="Connections tried, in order")
    headers = table.locator("thead th").all_inner_texts()
    column = next(i for i, h in enumerate(headers) if h.startswith("uni-b"))
    row = table.locator("tbody tr", has=page.get_by_role("rowheader", name="moodle_users"))
    cell = row.locator("td").nth(column - 1)
    assert cell.get_by_role("link").all_inner_texts() == ["uni-b"]
    assert "priority 1" in cell.inner_text()

    # Filtered: the class filter narrows the rows.
    page.get_by_label("Class contains").fill("sis")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("rowheader").all_inner_texts()[0].startswith("sis_enrolments")
    visitor.check("routing-filtered")

    # Connection: fields as resolved, its source, and a probe against the local Moodle peer.
    page.goto(visitor.url + "/ui/connections/moodle_users/uni-a")
    visitor.check("connection")
    assert "connections.d/uni-a/moodle_users.toml:5" in page.locator("main").inner_text()
    before = len(site.moodle.app[REQUESTS])
    page.get_by_role("button", name="Probe now").click()
    status = page.get_by_role("status")
    status.filter(has_text="✔ OK").wait_for()
    assert len(site.moodle.app[REQUESTS]) == before + 1
    visitor.check("connection-probed")
    page.goto(visitor.url + "/ui/routing?class=moodle_users&institution=uni-a")
    assert "last probe: ✔ OK" in page.get_by_role("table").locator("tbody td").inner_text()

    # Services: can peer basic-user call hello.*?
    page.goto(visitor.url + "/ui/services")
    page.get_by_label("Can this peer call it?").select_option("basic-user")
    page.get_by_role("button", name="Show").click()
    visitor.check("services")
    assert "basic-user may call it" in page.locator("thead").inner_text()

    # A broken tree and SIGHUP: the reload is refused and listed with its finding.
    site_file = site.root / "rpcd.toml"
    good = site_file.read_text(encoding="utf-8")
    try:
        site_file.write_text(good + "\n[[institution]]\nid = 'uni-a'\nname = 'Twice'\n")
        site.daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            page.goto(visitor.url + "/ui/reloads")
            if "REFUSED" in page.locator("main").inner_text() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        site_file.write_text(good)
    main = page.locator("main").inner_text()
    assert "✘ REFUSED" in main and "rpcd.toml:" in main
    visitor.check("reloads")

    # Log out: back to the sign-in page, and the pages ask for it again.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")
    page.goto(visitor.url + "/ui/routing")
    assert page.url.endswith("/ui/login")
    assert len(visitor.shots) >= 8


def test_an_institution_peer_sees_only_its_own_institution(visitor: Visitor) -> None:
    page = visitor.page
    page.goto(visitor.url + "/ui/login")
    page.get_by_label("User name").fill(BASIC_USER)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in with password").click()
    assert "wrong user name or password" in page.get_by_role("alert").inner_text()
    visitor.check("login-refused")
    page.get_by_label("User name").fill(BASIC_USER)
    page.get_by_label("Password").fill(BASIC_PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/ui")
    for path, label in [
        ("/ui", "overview"),
        ("/ui/routing", "routing"),
        ("/ui/services", "services"),
        ("/ui/reloads", "reloads"),
    ]:
        html = visitor.open(path, label)
        for other in ("uni-b", "college-c", "University B", "College C"):
            assert other not in html, (path, other)
    page.goto(visitor.url + "/ui/routing")
    headers = page.get_by_role("table").locator("thead th").all_inner_texts()
    assert headers[1:] == ["uni-a\nUniversity A"]
    page.goto(visitor.url + "/ui/connections/moodle_users/uni-b")
    assert "not one of yours" in page.get_by_role("alert").inner_text()
    visitor.check("connection-refused")


def test_pages_read_without_javascript(browser: Any, site: Site, artifacts: Path) -> None:
    """Reading needs no script: with JavaScript off, sign in and read the matrix."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site.daemon.url + "/ui/login")
        page.get_by_label("Token").fill(LOOPBACK_TOKEN)
        page.get_by_role("button", name="Sign in with token").click()
        page.wait_for_url("**/ui")
        page.goto(site.daemon.url + "/ui/routing?class=moodle")
        assert page.get_by_role("rowheader").all_inner_texts()[0].startswith("moodle_users")
        assert not page.get_by_label("Refresh this page every 15 s").is_visible()
        page.screenshot(path=str(artifacts / "nojs-routing.png"))
    finally:
        context.close()


def test_the_axe_check_finds_violations_on_a_bad_page(browser: Any, artifacts: Path) -> None:
    """The accessibility check can fail: a page with an unlabelled field and an image
    without alternative text has serious or critical violations."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content('<html><body><img src="x.png"><input type="text"></body></html>')
        visitor = Visitor(page, "", artifacts, "bad")
        with pytest.raises(AssertionError, match="axe-core found"):
            visitor.check("axe-self-test")
    finally:
        context.close()
