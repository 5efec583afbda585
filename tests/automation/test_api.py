"""The HTTP API in-process (TestClient) with the real store, runner and engine: routes,
validation, the auth matrix, pagination, errors, and no 500 whatever a client sends."""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.10 would rather its TestClient ran on httpx2, which is not in the lock file.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from automation.api import create_app
from automation.models import JobStatus, Operation
from automation.settings import Settings, TokenSpec
from automation.store import Store
from tests.automation.running_service import FIXTURE_CONFIG_KEYS, PASSPHRASE
from tests.conftest import copy_provider_free_project, marker_dir

pytestmark = pytest.mark.timeout(120)

TOKENS = {
    "reader": ("reader-token-0123456789", ["read"]),
    "dev-operator": ("dev-operator-token-0123456789", ["read", "operate:dev"]),
    "operator": ("operator-token-0123456789", ["operate:*"]),
}


@dataclass
class Api:
    client: TestClient
    store: Store
    project: Path

    def as_(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {}
        if who == "forged":
            return {"Authorization": "Bearer forged-token-0123456789"}
        return {"Authorization": f"Bearer {TOKENS[who][0]}"}

    def jobs_in_store(self) -> int:
        jobs, _ = self.store.list_jobs(limit=200)
        return len(jobs)

    def finished_job(self, environment: str = "dev") -> str:
        """A job that already ran (made in the store: the runner never sees it queued long)."""
        job = self.store.create_job(environment, Operation.PREVIEW)
        self.store.finish(job.id, JobStatus.SUCCEEDED, summary={"same": 3})
        return job.id


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    project = copy_provider_free_project(root / "project")
    settings = Settings(
        project_dir=project,
        state_dir=root / "state",
        environments=["dev", "prod"],
        config_allowlist=FIXTURE_CONFIG_KEYS.split(","),
        tokens=[
            TokenSpec(name=name, token=token, scopes=scopes)  # type: ignore[arg-type]
            for name, (token, scopes) in TOKENS.items()
        ],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
        patch.delenv("PULUMI_HOME", raising=False)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            store = client.app.state.services.store  # type: ignore[attr-defined]
            yield Api(client, store, project)


NOT_ALLOWED = {"config": {"not_allowlisted": "x"}}


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "expected"),
    [
        (None, "GET", "/jobs", None, 401),
        ("forged", "GET", "/jobs", None, 401),
        ("reader", "GET", "/jobs", None, 200),
        ("dev-operator", "GET", "/jobs", None, 200),
        ("operator", "GET", "/jobs", None, 403),
        (None, "GET", "/environments", None, 401),
        ("reader", "GET", "/environments", None, 200),
        ("operator", "GET", "/environments", None, 403),
        ("reader", "GET", "/jobs/unknown", None, 404),
        (None, "GET", "/jobs/unknown", None, 401),
        # A body the runner refuses (422) shows that authorization passed.
        (None, "POST", "/environments/dev/up", NOT_ALLOWED, 401),
        ("forged", "POST", "/environments/dev/up", NOT_ALLOWED, 401),
        ("reader", "POST", "/environments/dev/up", NOT_ALLOWED, 403),
        ("dev-operator", "POST", "/environments/dev/up", NOT_ALLOWED, 422),
        ("operator", "POST", "/environments/dev/up", NOT_ALLOWED, 422),
        ("dev-operator", "POST", "/environments/prod/up", NOT_ALLOWED, 403),
        ("operator", "POST", "/environments/prod/destroy", NOT_ALLOWED, 422),
        ("dev-operator", "POST", "/environments/qa/up", NOT_ALLOWED, 404),
        ("reader", "POST", "/environments/dev/deploy", {"image": "bad"}, 403),
        ("dev-operator", "POST", "/environments/dev/deploy", {"image": "bad"}, 422),
        (None, "GET", "/healthz", None, 200),
        (None, "GET", "/readyz", None, 200),
    ],
)
def test_auth_matrix(
    api: Api, who: str | None, method: str, path: str, body: Any, expected: int
) -> None:
    before = api.jobs_in_store()
    response = api.client.request(method, path, json=body, headers=api.as_(who))
    assert response.status_code == expected, response.text
    assert api.jobs_in_store() == before
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if expected >= 400:
        assert "detail" in response.json()


@pytest.mark.parametrize(
    ("who", "expected"), [(None, 401), ("reader", 403), ("dev-operator", 409), ("operator", 409)]
)
def test_cancel_needs_operate_on_the_jobs_environment(
    api: Api, who: str | None, expected: int
) -> None:
    job_id = api.finished_job("dev")
    response = api.client.post(f"/jobs/{job_id}/cancel", headers=api.as_(who))
    assert response.status_code == expected, response.text
    if expected == 409:
        assert response.json()["detail"] == f"job {job_id} is already succeeded"


def test_malformed_authorization_is_401(api: Api) -> None:
    for header in ("Basic abc", "Bearer", "Bearer    ", "token-only", "Bearer ümlaut"):
        response = api.client.get("/jobs", headers={"Authorization": header.encode("latin-1")})
        assert response.status_code == 401, header


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "valid dictionary"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
        ({"message": "x" * 1001}, "at most 1000 characters"),
        ({"config": {"greeting": "x" * 4097}}, "config greeting: the value is 4097 bytes"),
        ({"config": {"greeting": "é" * 2049}}, "the value is 4098 bytes; at most 4096"),
        ({"config": {"greeting": ["a"]}}, "greeting"),
        ({"config": "greeting=x"}, "valid dictionary"),
        ({"config": {"token": "x"}}, "config keys not allowed: token"),
    ],
)
def test_bad_operation_bodies_are_422_naming_the_problem(
    api: Api, body: Any, complaint: str
) -> None:
    before = api.jobs_in_store()
    response = api.client.post("/environments/dev/up", json=body, headers=api.as_("dev-operator"))
    assert response.status_code == 422, response.text
    assert complaint in json.dumps(response.json()["detail"])
    assert api.jobs_in_store() == before, "nothing is stored for a refused request"


def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    response = api.client.post(
        "/environments/dev/up",
        json={"config": {"greeting": {"nested": "hunter2-value"}}},
        headers=api.as_("dev-operator"),
    )
    assert response.status_code == 422
    assert "hunter2-value" not in response.text


def test_unknown_operation_and_environment(api: Api) -> None:
    headers = api.as_("operator")
    response = api.client.post("/environments/dev/explode", headers=headers)
    assert response.status_code == 422
    assert "'preview', 'up', 'refresh', 'destroy' or 'drift'" in response.text
    response = api.client.get("/environments/qa", headers=api.as_("reader"))
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown environment 'qa'; known: dev, prod"}


def test_unknown_job_is_404_everywhere(api: Api) -> None:
    headers = api.as_("dev-operator")
    for method, path in [
        ("GET", "/jobs/nope"),
        ("GET", "/jobs/nope/log"),
        ("GET", "/jobs/nope/events"),
        ("POST", "/jobs/nope/cancel"),
    ]:
        response = api.client.request(method, path, headers=headers)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "unknown job 'nope'"}


def test_job_listing_is_newest_first_and_paginates(api: Api) -> None:
    mine = [api.finished_job("prod") for _ in range(5)]
    headers = api.as_("reader")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "environment": "prod"}
        if cursor is not None:
            params["cursor"] = cursor
        page = api.client.get("/jobs", params=params, headers=headers).json()
        assert len(page["items"]) <= 2
        seen.extend(job["id"] for job in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [job_id for job_id in seen if job_id in mine] == list(reversed(mine))
    assert len(seen) == len(set(seen)), "no job on two pages"
    succeeded = api.client.get("/jobs", params={"status": "succeeded"}, headers=headers).json()
    assert all(job["status"] == "succeeded" for job in succeeded["items"])


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "many"},
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"status": "exploded"},
    ],
)
def test_bad_listing_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    response = api.client.get("/jobs", params=params, headers=api.as_("reader"))
    assert response.status_code == 422, response.text


def test_listing_an_unknown_environment_is_404(api: Api) -> None:
    response = api.client.get("/jobs", params={"environment": "qa"}, headers=api.as_("reader"))
    assert response.status_code == 404


def test_finished_job_events_replay_and_close(api: Api) -> None:
    job_id = api.finished_job("dev")
    api.store.append_events(job_id, ['{"sequence": 0, "preludeEvent": {"config": {}}}'])
    response = api.client.get(f"/jobs/{job_id}/events", headers=api.as_("reader"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text.replace("\r\n", "\n")
    assert 'id: 0\nevent: engine\ndata: {"sequence": 0, "preludeEvent": {"config": {}}}\n' in text
    assert "event: end\n" in text and '"status": "succeeded"' in text
    log = api.client.get(f"/jobs/{job_id}/log", headers=api.as_("reader"))
    assert log.status_code == 200 and log.text == ""


def test_environment_detail_before_the_stack_exists_shows_the_stack_file(api: Api) -> None:
    """No operation ever ran on prod here: the backend has no such stack yet."""
    detail = api.client.get("/environments/prod", headers=api.as_("reader")).json()
    markers = str(marker_dir(api.project, "prod"))
    assert detail == {
        "name": "prod",
        "stack_exists": False,
        "config": {
            "provider-free-fixture:greeting": "hello from prod",
            "provider-free-fixture:marker_dir": markers,
        },
        "outputs": {},
        "active_job": None,
        "queued_jobs": [],
        "drift": {"status": "unknown", "checked_at": None, "job_id": None, "resources": []},
    }


def test_an_accepted_operation_runs_and_is_recorded(api: Api) -> None:
    response = api.client.post(
        "/environments/dev/preview",
        json={"message": "from the API test"},
        headers=api.as_("dev-operator"),
    )
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["requested_by"] == "dev-operator"
    # Following the event stream waits for the end of the job.
    stream = api.client.get(f"/jobs/{job['id']}/events", headers=api.as_("reader"))
    assert "event: end" in stream.text
    done = api.client.get(f"/jobs/{job['id']}", headers=api.as_("reader")).json()
    assert done["status"] == "succeeded", done
    assert sum(done["summary"].values()) == 4, "the stack, the component and two files"
    assert done["message"] == "from the API test"


def test_openapi_documents_the_contract(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/healthz",
        "/readyz",
        "/environments",
        "/environments/{env}",
        "/environments/{env}/{operation}",
        "/environments/{env}/deploy",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/events",
        "/jobs/{job_id}/log",
        "/jobs/{job_id}/cancel",
    } <= paths


def test_nothing_a_client_sends_is_a_500(api: Api) -> None:
    """A small seeded fuzz over paths, methods, headers and bodies."""
    rng = random.Random(20261129)
    values: list[Any] = [
        None,
        True,
        0,
        -1,
        10**30,
        1.5e308,
        "",
        "x" * 5000,
        "ünïcödé\u0000",
        [],
        {},
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
    ]
    fields = ["message", "config", "image", "unknown", ""]
    paths = [
        "/environments/dev/up",
        "/environments/dev/deploy",
        "/environments/prod/refresh",
        "/environments/%00/up",
        "/environments/dev/%2e%2e",
        "/jobs",
        "/jobs/%ff",
        "/jobs/x/cancel",
        "/jobs/x/events",
    ]
    headers_pool = [
        api.as_("operator"),
        api.as_("dev-operator"),
        {"Authorization": "Bearer " + "a" * 10000},
        {"Last-Event-ID": "99999999999999999999999"},
        {"Content-Type": "text/plain"},
    ]
    for _ in range(150):
        body: Any = rng.choice(values)
        if rng.random() < 0.6:
            body = {rng.choice(fields): rng.choice(values) for _ in range(rng.randint(0, 3))}
        if rng.random() < 0.3 and isinstance(body, dict):
            body["config"] = {rng.choice(["greeting", "fail", "x"]): rng.choice(values)}
        method = rng.choice(["GET", "POST", "PUT", "DELETE"])
        headers = {**api.as_("reader"), **rng.choice(headers_pool)}
        path = rng.choice(paths)
        if method == "GET" and rng.random() < 0.5:
            path += "?limit=" + rng.choice(["0", "-5", "abc", "1e9", "3"])
        content = json.dumps(body, allow_nan=True).encode()
        response = api.client.request(method, path, content=content, headers=headers)
        assert response.status_code < 500, (method, path, body, response.text)
        if response.status_code == 202:  # accepted: do not let fuzz jobs pile up
            api.client.post(f"/jobs/{response.json()['id']}/cancel", headers=api.as_("operator"))


def test_idempotency_key_replays_per_caller_and_refuses_another_request(api: Api) -> None:
    key = {"Idempotency-Key": "release-42"}
    body = {"message": "idempotent", "config": {"greeting": "hi"}}
    first = api.client.post(
        "/environments/dev/preview", json=body, headers={**api.as_("dev-operator"), **key}
    )
    assert first.status_code == 202, first.text
    before = api.jobs_in_store()
    again = api.client.post(
        "/environments/dev/preview", json=body, headers={**api.as_("dev-operator"), **key}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == f"/jobs/{first.json()['id']}"
    assert api.jobs_in_store() == before, "a replay creates no job"

    other = api.client.post(
        "/environments/dev/preview",
        json={**body, "message": "another"},
        headers={**api.as_("dev-operator"), **key},
    )
    assert other.status_code == 422
    assert "'release-42' was used for a different request" in other.json()["detail"]
    elsewhere = api.client.post(
        "/environments/dev/up", json=body, headers={**api.as_("dev-operator"), **key}
    )
    assert elsewhere.status_code == 422, "the same key on another route is another request"

    by_someone_else = api.client.post(
        "/environments/dev/preview", json=body, headers={**api.as_("operator"), **key}
    )
    assert by_someone_else.status_code == 202
    assert by_someone_else.json()["id"] != first.json()["id"], "keys are per caller"
    assert api.jobs_in_store() == before + 1


def test_rollback_and_idempotency_are_in_the_contract(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    rollback = schema["paths"]["/environments/{env}/rollback"]["post"]
    headers = {p["name"] for p in rollback["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    job = schema["components"]["schemas"]["Job"]["properties"]
    assert {"source", "rollback_of", "config_changes"} <= set(job)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"cursor": "99999999999999999999"}, "cursor '99999999999999999999' is not one"),
        ({"cursor": "\N{SUPERSCRIPT TWO}"}, "is not one this API returned"),
        ({"cursor": "\N{CIRCLED DIGIT ONE}"}, "is not one this API returned"),
        ({"cursor": "-1"}, "is not one this API returned"),
        ({"limit": "0"}, "greater than or equal to 1"),
        ({"limit": "201"}, "less than or equal to 200"),
        ({"limit": "abc"}, "valid integer"),
        ({"status": "done"}, "'queued', 'running'"),
    ],
)
def test_bad_query_values_are_422_with_a_message(
    api: Api, query: dict[str, str], expected: str
) -> None:
    response = api.client.get("/jobs", params=query, headers=api.as_("reader"))
    assert response.status_code == 422, response.text
    assert expected in json.dumps(response.json()["detail"], ensure_ascii=False)


def test_over_long_names_are_not_echoed(api: Api) -> None:
    name = "q" * 10_000
    for path in (f"/environments/{name}", f"/jobs/{name}", f"/jobs?environment={name}"):
        response = api.client.get(path, headers=api.as_("reader"))
        assert response.status_code == 404, response.text
        detail = response.json()["detail"]
        assert len(detail) < 200 and "(10000 characters)" in detail


def test_callers_without_read_do_not_learn_the_environments_from_a_404(api: Api) -> None:
    for who, listed in (("operator", False), ("dev-operator", True)):
        response = api.client.post("/environments/qa/up", headers=api.as_(who))
        assert response.status_code == 404
        assert ("known: dev, prod" in response.json()["detail"]) is listed, (who, response.text)
        assert "prod" not in response.json()["detail"] or listed


@pytest.mark.parametrize(
    ("headers", "content", "expected"),
    [
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"message=hi", 415),
        ({"Content-Type": "text/plain"}, b'{"message": "hi"}', 415),
        ({}, b'{"message": "hi"}', 415),
        ({"Content-Type": "application/json"}, b"x" * (64 * 1024 + 1), 413),
    ],
)
def test_bodies_must_be_json_and_bounded_whoever_sends_them(
    api: Api, headers: dict[str, str], content: bytes, expected: int
) -> None:
    before = api.jobs_in_store()
    response = api.client.post(
        "/environments/dev/preview", content=content, headers={**api.as_("operator"), **headers}
    )
    assert response.status_code == expected, response.text
    assert response.headers["connection"] == "close"
    detail = response.json()["detail"]
    assert ("Content-Type: application/json" in detail) == (expected == 415)
    assert api.jobs_in_store() == before
    unauthenticated = api.client.post("/environments/dev/preview", content=content, headers=headers)
    assert unauthenticated.status_code == (413 if expected == 413 else 401)


def test_openapi_declares_the_bearer_scheme_and_each_routes_codes(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from AUTOMATION_TOKENS (none when it is empty).",
    }
    paths = schema["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    edge_post = {"400", "401", "403", "408", "413", "415", "421", "503"}
    assert codes("/healthz", "get") == {"200", "421"}
    assert codes("/readyz", "get") == {"200", "421", "503"}
    assert codes("/jobs/{job_id}", "get") == {"200", "401", "403", "404", "421"}
    assert codes("/jobs/{job_id}/cancel", "post") == {"200", "202", "404", "409"} | edge_post
    replay_or_accepted = {"200", "202", "404", "422", "429"}
    assert codes("/environments/{env}/{operation}", "post") == replay_or_accepted | edge_post
    assert codes("/environments/{env}/rollback", "post") == replay_or_accepted | {"409"} | edge_post
    assert paths["/jobs/{job_id}"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/healthz"]["get"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_docs_are_served_offline(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts and all(url.startswith("/docs/assets/") for url in scripts), scripts
    for url in scripts:
        asset = api.client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert api.client.get("/redoc").status_code == 404
