"""The dashboard's tests: one real service (`python -m automation`, tokens configured) on a copy
of the provider-free fixture, driven by Playwright in Debian's chromium (installed by
scripts/setup; Playwright never downloads a browser of its own here)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.automation.running_service import FINISHED, Service, service_environment
from tests.conftest import copy_provider_free_project

READER = "reader-token-0123456789"
OPERATOR = "operator-token-0123456789"
APPROVER = "approver-token-0123456789"
TOKENS = [
    {"name": "viewer", "token": READER, "scopes": ["read"]},
    {"name": "operator", "token": OPERATOR, "scopes": ["read", "operate:*"]},
    {"name": "approver", "token": APPROVER, "scopes": ["read", "approve:prod"]},
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=375, height=740)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Shared by the dashboard's tests (each waits for the jobs it starts to finish)."""
    root = tmp_path_factory.mktemp("dashboard")
    project = copy_provider_free_project(root / "project")
    env = service_environment(
        project,
        root / "state",
        environments="dev,prod",
        require_approval="prod",
        tokens=json.dumps(TOKENS),
        image_config_key="image",
    )
    running = Service(env, root / "service.log", token=OPERATOR)
    yield running
    workers = running.worker_pids()
    running.stop()
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: run scripts/setup")
    launched = playwright.chromium.launch(executable_path=chromium)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, service: Service) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) whose relative URLs go to the service."""
    opened = browser.new_context(base_url=service.base_url, viewport=DESKTOP)
    opened.set_default_timeout(15_000)
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    opened = context.new_page()
    yield opened
    # A test's route handlers must not outlive it: one a late request sets off would run when
    # the session's browser closes, after its page is gone, and fail there.
    opened.unroute_all(behavior="ignoreErrors")


def screenshot(page: Page, name: str) -> None:
    """Saves the whole page, at desktop then at phone width, under tests/dashboard/screenshots."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    size = page.viewport_size or DESKTOP
    page.set_viewport_size(PHONE)
    page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(size)


def wait_for_stream_end(page: Page) -> None:
    """A job page has shown the job's last event, its final state and whole log."""
    page.locator("body[data-stream=ended]").wait_for(state="attached", timeout=60_000)


def log_in(page: Page, token: str) -> None:
    """The login form, from a page that needs a session (it redirects there and back)."""
    page.goto("/")
    page.wait_for_url("**/ui/login?next=*")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: url.endswith("/"))


def some_finished_job(service: Service) -> dict[str, Any]:
    """A finished job of `dev` (an earlier test's, or a preview run now)."""
    finished = [
        job
        for job in service.http.get("/jobs", params={"environment": "dev"}).json()["items"]
        if job["status"] in FINISHED
    ]
    return (
        finished[0] if finished else service.wait(service.post("/environments/dev/preview")["id"])
    )
