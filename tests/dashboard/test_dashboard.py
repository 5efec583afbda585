"""The dashboard end to end in a real browser: login, an `up` started from the page and streamed
to `succeeded`, a queued job cancelled, a failed job's error, a wrong token, a read-only token.
Each test saves screenshots (desktop and phone width) under tests/dashboard/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.automation.running_service import Service, wait_for_log
from tests.dashboard.conftest import (
    APPROVER,
    OPERATOR,
    READER,
    log_in,
    screenshot,
    some_finished_job,
    wait_for_stream_end,
)

pytestmark = pytest.mark.timeout(120)
JOB_URL = re.compile(r"/ui/jobs/(?P<id>[0-9a-f-]+)$")


def api_path(path: str) -> Callable[[str], bool]:
    """Matches requests for exactly this path (not the page whose URL ends the same)."""
    return lambda url: urlsplit(url).path == path


def job_id_of(page: Page) -> str:
    found = JOB_URL.search(page.url)
    assert found, page.url
    return found["id"]


def test_a_wrong_token_is_refused_with_a_visible_message(
    page: Page, context: BrowserContext
) -> None:
    page.goto("/ui/jobs")
    page.wait_for_url("**/ui/login?next=%2Fui%2Fjobs")
    page.get_by_label("Token").fill("not-a-token-of-this-service")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Login failed: unknown or revoked token")
    expect(page.get_by_label("Token")).to_be_empty()
    assert context.cookies() == []
    screenshot(page, "login-refused")


def test_an_up_started_from_the_page_streams_to_succeeded(
    page: Page, context: BrowserContext, service: Service
) -> None:
    log_in(page, OPERATOR)
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert OPERATOR not in cookie["value"], "the cookie holds the token encoded, never as text"
    dev = page.locator("#env-dev")
    expect(page.locator("#who")).to_contain_text("operator")
    expect(dev.locator(".now")).to_have_text("idle")
    prod = page.locator("#env-prod")
    expect(prod.locator("h2")).to_contain_text("approval required")
    expect(prod.get_by_role("button")).to_have_text(["Preview"])
    screenshot(page, "overview-operator")

    dev.get_by_role("button", name="Up", exact=True).click()
    page.wait_for_url(JOB_URL)
    job_id = job_id_of(page)
    expect(page.locator("#status")).to_have_text("succeeded", timeout=60_000)
    progress = page.locator("#progress tbody")
    expect(progress.get_by_role("row").filter(has_text="greeter-marker")).to_contain_text("done")
    expect(progress.get_by_role("row")).to_have_count(len(service.job(job_id)["changes"]))
    changes = page.locator("#changes tbody")
    expect(changes.get_by_role("row").filter(has_text="farewell")).to_contain_text("create")
    expect(changes).to_contain_text("goodbye")
    expect(page.locator("#log")).to_contain_text("Resources:")
    expect(page.locator("#details")).to_contain_text("operator")
    assert OPERATOR not in page.content()
    wait_for_stream_end(page)
    screenshot(page, "job-up-succeeded")

    page.get_by_role("link", name="Environments").click()
    expect(dev.locator(".deploy")).to_contain_text(f"{job_id[:8]} by operator")
    expect(dev.locator(".outputs")).to_contain_text("greeting")
    screenshot(page, "overview-after-up")


def test_a_queued_job_is_cancelled_from_its_page(page: Page, service: Service) -> None:
    slow = service.post(
        "/environments/dev/up", {"config": {"greeting": "slowly", "delay_seconds": "3"}}
    )
    queued = service.post("/environments/dev/preview")
    try:
        log_in(page, OPERATOR)
        page.goto(f"/ui/jobs/{queued['id']}")
        expect(page.locator("#status")).to_have_text("queued")
        screenshot(page, "job-queued")
        page.get_by_role("button", name="Cancel", exact=True).click()
        expect(page.locator("#status")).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
        assert service.job(queued["id"])["status"] == "cancelled"

        page.goto(f"/ui/jobs/{slow['id']}")
        expect(page.locator("#status")).to_have_text("running")
        marker = page.locator("#progress tbody tr").filter(has_text="greeter-marker")
        expect(marker).to_contain_text("in progress", timeout=30_000)
        expect(page.get_by_role("button", name="Cancel (Ctrl-C)")).to_be_visible()
        screenshot(page, "job-running")
    finally:
        # Once the engine is updating the marker (a Ctrl-C earlier can leave the stack locked
        # for the next job); a cancelled up writes no config back.
        wait_for_log(service, slow["id"], "greeter-marker updating")
        service.http.post(f"/jobs/{slow['id']}/cancel")
        assert service.wait(slow["id"])["status"] == "cancelled"


def test_a_failed_job_shows_its_error(page: Page, service: Service) -> None:
    started = service.post("/environments/dev/up", {"config": {"greeting": "boom", "fail": "true"}})
    failed = service.wait(started["id"])
    assert failed["status"] == "failed", failed
    log_in(page, OPERATOR)
    page.goto(f"/ui/jobs/{failed['id']}")
    expect(page.locator("#status")).to_have_text("failed")
    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("the fixture was asked to fail")
    wait_for_stream_end(page)
    progress = page.locator("#progress tbody")
    expect(progress.get_by_role("row").filter(has_text="greeter-marker")).to_contain_text("failed")
    expect(progress).not_to_contain_text("in progress")
    expect(page.locator("#log")).to_contain_text("the fixture was asked to fail")
    screenshot(page, "job-failed")

    page.goto("/ui/jobs")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/jobs?environment=&status=failed")
    rows = page.locator("#jobs tbody").get_by_role("row")
    expect(rows.first).to_contain_text(failed["id"][:8])
    for status in rows.locator(".badge").all_inner_texts():
        assert status == "failed"
    screenshot(page, "jobs-failed")


def test_a_read_only_token_sees_no_action_buttons(page: Page, service: Service) -> None:
    job = some_finished_job(service)
    log_in(page, READER)
    expect(page.locator("#who")).to_contain_text("viewer")
    expect(page.locator("#env-dev .deploy")).not_to_have_text("…")
    expect(page.locator("main").get_by_role("button")).to_have_count(0)
    screenshot(page, "overview-viewer")

    page.goto(f"/ui/jobs/{job['id']}")
    expect(page.locator("#status")).to_have_text(job["status"])
    expect(page.locator("#details")).to_contain_text(job["id"])
    expect(page.locator("main").get_by_role("button")).to_have_count(0)
    wait_for_stream_end(page)
    screenshot(page, "job-viewer")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")
    page.goto("/")
    page.wait_for_url("**/ui/login?next=%2F")


def test_destroy_asks_for_the_environment_name(page: Page, service: Service) -> None:
    log_in(page, OPERATOR)
    page.locator("#env-dev").get_by_role("button", name="Destroy…").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Destroy dev?")
    confirm = dialog.get_by_role("button", name="Destroy")
    typed = dialog.get_by_label("Type dev to confirm")
    expect(typed).to_be_focused()
    expect(confirm).to_be_disabled()
    typed.fill("de")
    expect(confirm).to_be_disabled()
    typed.fill("dev")
    expect(confirm).to_be_enabled()
    screenshot(page, "destroy-confirm")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    jobs = service.http.get("/jobs", params={"environment": "dev"}).json()["items"]
    assert all(job["operation"] != "destroy" for job in jobs)


def test_an_approver_applies_a_preview_after_confirming(page: Page, service: Service) -> None:
    preview = service.wait(service.post("/environments/prod/preview")["id"])
    assert preview["status"] == "succeeded", preview
    log_in(page, APPROVER)
    expect(page.locator("#env-prod").get_by_role("button")).to_have_count(0)
    page.goto(f"/ui/jobs/{preview['id']}")
    page.get_by_role("button", name="Approve and apply…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("prod requires approval")
    screenshot(page, "apply-confirm")
    dialog.get_by_role("button", name="Approve and apply").click()
    page.wait_for_url(lambda url: JOB_URL.search(url) is not None and preview["id"] not in url)
    expect(page.locator("#status")).to_have_text("succeeded", timeout=60_000)
    details = page.locator("#details")
    expect(details).to_contain_text("approver")
    expect(details.get_by_role("link", name=preview["id"][:8])).to_be_visible()
    wait_for_stream_end(page)
    screenshot(page, "job-approved-apply")


def test_drift_and_verification_show_when_the_service_reports_them(
    page: Page, service: Service
) -> None:
    """The service is gaining `drift` on environments and `verification` on jobs; the pages
    show them when present (here added to the real answers in the browser) and cope without."""
    job = some_finished_job(service)
    drift = {"status": "drifted", "checked_at": "2026-12-01T10:00:00Z", "resources": ["x"]}
    verification = {"status": "failed", "detail": "GET /healthz answered 503"}

    def add(route: Route, extra: dict[str, Any]) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), **extra})

    page.route(api_path("/environments/dev"), lambda route: add(route, {"drift": drift}))
    page.route(
        api_path(f"/jobs/{job['id']}"), lambda route: add(route, {"verification": verification})
    )
    log_in(page, READER)
    expect(page.locator("#env-dev .drift")).to_contain_text("drifted checked")
    expect(page.locator("#env-dev .drift")).to_contain_text("1 resource(s)")
    expect(page.locator("#env-prod .drift")).to_have_text("not checked")
    page.goto(f"/ui/jobs/{job['id']}")
    expect(page.locator("#details")).to_contain_text("failed GET /healthz answered 503")
