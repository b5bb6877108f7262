"""Browser tests: Playwright drives Debian's chromium (headless) against the real stack.

No browser is downloaded: the driver is pointed at /usr/bin/chromium (`.ci/run` installs
the `chromium` package when it is missing). Screenshots of the main pages are saved under
the test's tmp directory, and also under $PAYMUX_SCREENSHOTS_DIR when that is set (how
docs/screenshots/ is refreshed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from paymux.devstack import Stack
from tests.e2e.conftest import make_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/browser/" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("browser"),
        redis_url,
        # A failing endpoint gives up quickly, so the deliveries page has failures to show.
        PAYMUX_WEBHOOK_RETRY_SCHEDULE="[0,1,1]",
        PAYMUX_WEBHOOK_TIMEOUT_SECONDS="2",
    )
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


# Module scope, not session: the sync API keeps its own event loop running while it is
# open, which would stop every asyncio test collected after this directory.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI needs /usr/bin/chromium (apt-get install -y chromium)")
        pytest.skip("no /usr/bin/chromium here: apt-get install -y chromium")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("screenshots")
    yield out
    publish = os.environ.get("PAYMUX_SCREENSHOTS_DIR")
    if publish:
        Path(publish).mkdir(parents=True, exist_ok=True)
        for png in out.glob("*.png"):
            shutil.copy(png, Path(publish) / png.name)
    print(f"\ndashboard screenshots: {out}")
