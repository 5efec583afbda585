"""The login cookie from outside, with plain HTTP: its attributes, that every route takes it
in place of the header (the event stream too), that an unsafe request carrying it must come
from the service's own origin, and logout."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.automation.running_service import Service
from tests.dashboard.conftest import OPERATOR, READER, some_finished_job

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def operator(service: Service) -> Iterator[httpx.Client]:
    """A client that logged in as the operator and sends only the cookie from then on."""
    with httpx.Client(base_url=service.base_url, timeout=30.0) as client:
        response = client.post("/session", headers={"Authorization": f"Bearer {OPERATOR}"})
        assert response.status_code == 200, response.text
        yield client


def test_login_sets_an_http_only_same_site_strict_cookie(service: Service) -> None:
    response = httpx.post(
        f"{service.base_url}/session", headers={"Authorization": f"Bearer {READER}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "viewer"
    assert response.json()["environments"] == [
        {"name": "dev", "requires_approval": False, "may_operate": False, "may_approve": False},
        {"name": "prod", "requires_approval": True, "may_operate": False, "may_approve": False},
    ]
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes, cookie
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert "secure" not in attributes, "plain http here: a Secure cookie would never be sent"
    assert READER not in cookie

    refused = httpx.post(
        f"{service.base_url}/session", headers={"Authorization": "Bearer wrong-token-0123456789"}
    )
    assert refused.status_code == 401
    assert refused.json() == {"detail": "unknown or revoked token"}
    assert "set-cookie" not in refused.headers


def test_the_cookie_stands_in_for_the_header_on_reads_and_events(
    operator: httpx.Client, service: Service
) -> None:
    assert operator.get("/session").json()["environments"][0]["may_operate"] is True
    assert operator.get("/jobs").status_code == 200
    job = some_finished_job(service)
    with operator.stream("GET", f"/jobs/{job['id']}/events") as events:
        assert events.status_code == 200
        assert "event: end" in events.read().decode()

    forged = httpx.get(
        f"{service.base_url}/jobs",
        cookies={"automation_session": base64.urlsafe_b64encode(b"guessed-0123456789").decode()},
    )
    assert forged.status_code == 401
    assert forged.json()["detail"] == "the session's token is unknown or revoked: log in again"


def test_an_unsafe_request_with_the_cookie_must_come_from_this_origin(
    operator: httpx.Client, service: Service
) -> None:
    for origin in (None, "http://attacker.example", f"{service.base_url}.attacker.example"):
        headers = {"Origin": origin} if origin else {}
        refused = operator.post("/environments/dev/preview", headers=headers)
        assert refused.status_code == 403, (origin, refused.text)
        assert "must come from this service's own pages" in refused.json()["detail"]
    assert service.http.get("/jobs", params={"status": "queued"}).json()["items"] == []

    own = {"Origin": service.base_url}
    checked = operator.post("/environments/dev/destroy", headers=own, json={"confirm": "x"})
    assert checked.status_code == 422, "the edge and the route took the cookie (with a body)"
    assert "destroy needs" in checked.json()["detail"]
    finished = some_finished_job(service)
    reached = operator.post(f"/jobs/{finished['id']}/cancel", headers=own)
    assert reached.status_code == 409, "the route ran for the cookie's caller (without a body)"
    audit = service.http.get("/audit", params={"environment": "dev"}).json()["items"]
    assert audit[-1]["actor"] == "operator" and audit[-1]["operation"] == "cancel", audit[-1]


def test_logout_clears_the_cookie(operator: httpx.Client, service: Service) -> None:
    response = operator.delete("/session", headers={"Origin": service.base_url})
    assert response.status_code == 204
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert operator.get("/jobs").status_code == 401


def test_pages_hold_no_data_and_load_nothing_from_elsewhere(service: Service) -> None:
    for path in ("/", "/ui/jobs", "/ui/jobs/any", "/ui/login"):
        page = httpx.get(f"{service.base_url}{path}")
        assert page.status_code == 200, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "//" not in page.text.replace("http://www.w3.org", ""), "every asset is local"
    for asset in ("dashboard.js", "dashboard.css", "favicon.svg"):
        assert httpx.get(f"{service.base_url}/ui/static/{asset}").status_code == 200
