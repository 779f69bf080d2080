"""Fixtures of the browser tests: one ``interlock up`` (gateway, control plane, console) and one headless
Chromium for the module; a fresh browser context (cookies, storage) per login."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.browser import chromium_executable
from tests.console.up import LocalStack, start_up

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    pytest.fail("tests/console need Playwright for Python: `source scripts/_venv.sh dev`", pytrace=False)

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
expect.set_options(timeout=20_000)  # a shared 2-core machine: page loads may queue behind other work


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = start_up(tmp_path_factory.mktemp("up"))
    yield local
    local.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


class Watched:
    """A page whose script errors and CSP violations are collected (a test asserts there are none)."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    contexts: list[BrowserContext] = []

    def make() -> Watched:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(30_000)
        contexts.append(context)
        return Watched(context)

    yield make
    for context in contexts:
        context.close()
