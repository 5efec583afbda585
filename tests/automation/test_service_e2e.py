"""The real service (`python -m automation`) driving the real engine on the fixture project.

One service for the whole module (starting one costs seconds of CPU on two cores); each test
has environments of its own (stack files copied from dev with their own greeting), so no test
sees another's jobs or stacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from automation.engine import Engine
from tests.automation.running_service import (
    PASSPHRASE,
    Service,
    engine_events,
    locks,
    service_environment,
    wait_for_log,
)
from tests.conftest import copy_provider_free_project, marker_dir, write_stack_file

pytestmark = pytest.mark.timeout(120)

ENVIRONMENTS = ("dev", "prod", "failing", "queue", "parallel", "cancel", "sse", "deploy", "secret")
LEAKY_PROGRAM = """
if token is not None:  # added by the test: a program that leaks its secret as best it can
    token.apply(lambda t: print("the program printed", t))
    pulumi.export("unsecret_token", pulumi.Output.unsecret(token))
"""


@dataclass
class Shared:
    service: Service
    project: Path
    state_dir: Path

    def marker(self, stack: str) -> Path:
        return marker_dir(self.project, stack) / "greeting.txt"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("shared")
    project = copy_provider_free_project(root / "project")
    for name in ENVIRONMENTS[2:]:
        write_stack_file(project, name, f"hello from {name}")
    program = project / "__main__.py"
    program.write_text(program.read_text() + LEAKY_PROGRAM)
    state_dir = root / "state"
    env = service_environment(
        project, state_dir, environments=",".join(ENVIRONMENTS), queue_limit="2"
    )
    service = Service(env, root / "service.log")
    yield Shared(service, project, state_dir)
    service.stop()


def test_preview_up_outputs_noop_up_destroy(shared: Shared) -> None:
    service, marker = shared.service, shared.marker("dev")
    preview = service.wait(service.post("/environments/dev/preview")["id"])
    assert preview["status"] == "succeeded", preview
    assert preview["summary"] == {"create": 4}
    assert not marker.exists()

    accepted = service.http.post("/environments/dev/up", json={"message": "first"})
    assert accepted.status_code == 202
    assert accepted.headers["Location"] == f"/jobs/{accepted.json()['id']}"
    up = service.wait(accepted.json()["id"])
    assert up["status"] == "succeeded", up
    assert up["summary"] == {"create": 4}
    expected = {
        "greeting": "hello from dev",
        "marker_path": str(marker),
        "farewell_path": str(marker.with_name("farewell.txt")),
        "shout": "HELLO FROM DEV",
        "stack": "dev",
    }
    assert up["outputs"] == expected
    assert up["message"] == "first"
    assert marker.read_text() == "hello from dev"
    assert "Updating (dev)" in service.http.get(f"/jobs/{up['id']}/log").text

    detail = service.http.get("/environments/dev").json()
    assert detail["outputs"] == expected
    assert detail["config"] == {
        "provider-free-fixture:greeting": "hello from dev",
        "provider-free-fixture:marker_dir": str(marker.parent),
    }
    assert detail["stack_exists"] is True
    listed = {env["name"]: env for env in service.http.get("/environments").json()}
    assert listed["dev"]["outputs"] == expected
    assert listed["dev"]["last_job"]["id"] == up["id"]
    assert listed["prod"] == {"name": "prod", "last_job": None, "outputs": None}

    again = service.wait(service.post("/environments/dev/up")["id"])
    assert again["status"] == "succeeded"
    assert again["summary"] == {"same": 4}
    assert again["outputs"] == expected

    destroyed = service.wait(service.post("/environments/dev/destroy", {"confirm": "dev"})["id"])
    assert destroyed["status"] == "succeeded", destroyed
    assert destroyed["summary"] == {"delete": 4}
    assert not marker.exists()
    listed = {env["name"]: env for env in service.http.get("/environments").json()}
    assert listed["dev"]["outputs"] == {}
    assert service.http.get("/environments/dev").json()["outputs"] == {}


def test_failed_operation_reports_the_engine_error(shared: Shared) -> None:
    service = shared.service
    job = service.wait(service.post("/environments/failing/up", {"config": {"fail": True}})["id"])
    assert job["status"] == "failed"
    assert job["config"] == {"fail": "true"}
    assert "the fixture was asked to fail (config fail=true)" in job["error"]
    assert job["outputs"] is None
    assert "fail:" not in (shared.project / "Pulumi.failing.yaml").read_text(), "a failed up"
    assert job["config_changes"] == []


def test_queue_order_limit_cancel_and_environments_in_parallel(shared: Shared) -> None:
    service = shared.service
    slow = service.post("/environments/queue/up", {"config": {"delay_seconds": 1.5}})
    service.wait(slow["id"], statuses={"running"})
    other = service.post("/environments/parallel/up", {"config": {"delay_seconds": 1.5}})
    first = service.post("/environments/queue/preview")
    second = service.post("/environments/queue/refresh")
    full = service.http.post("/environments/queue/preview")
    assert full.status_code == 429
    assert full.json()["detail"] == "the queue of queue is full (2 jobs waiting); retry later"

    cancelled = service.http.post(f"/jobs/{second['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert service.http.post(f"/jobs/{second['id']}/cancel").status_code == 409

    done = [service.wait(job["id"]) for job in (slow, first, other)]
    assert [job["status"] for job in done] == ["succeeded"] * 3
    slow, first, other = done
    assert slow["finished_at"] <= first["started_at"], "one operation per environment at a time"
    assert slow["started_at"] < other["finished_at"] and other["started_at"] < slow["finished_at"]
    assert other["outputs"]["greeting"] == "hello from parallel"
    assert service.job(second["id"])["started_at"] is None, "a cancelled queued job never ran"
    jobs = service.http.get("/jobs", params={"environment": "queue"}).json()["items"]
    assert [job["id"] for job in jobs] == [second["id"], first["id"], slow["id"]]


def test_cancel_of_a_running_up_is_graceful(shared: Shared) -> None:
    service = shared.service
    job = service.post("/environments/cancel/up", {"config": {"delay_seconds": 2}})
    wait_for_log(service, job["id"], "greeter-marker creating")
    response = service.http.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    ended = service.wait(job["id"])
    assert ended["status"] == "cancelled", ended
    assert "update canceled" in ended["error"]
    assert service.http.post(f"/jobs/{job['id']}/cancel").status_code == 409
    assert locks(shared.state_dir, "cancel") == [], "Pulumi's Ctrl-C unlocks the stack"

    after = service.post("/environments/cancel/up", {"config": {"delay_seconds": 0}})
    assert service.wait(after["id"])["status"] == "succeeded"
    assert shared.marker("cancel").read_text() == "hello from cancel"


def test_sse_follows_live_within_a_second_and_resumes(shared: Shared) -> None:
    service = shared.service
    job = service.post("/environments/sse/up", {"config": {"delay_seconds": 1.5}})
    received = [(time.time(), message) for message in service.events(job["id"])]
    messages = [message for _, message in received]
    names = [event for _, event, _ in messages]
    assert names[0] == "status" and json.loads(messages[0][2])["id"] == job["id"]
    statuses = [json.loads(data)["status"] for _, event, data in messages if event == "status"]
    assert statuses[-2:] == ["running", "succeeded"] and statuses[0] in ("queued", "running")
    assert {"status", "engine", "end"} <= set(names) <= {"status", "engine", "log", "end"}
    last_id, last_event, last_data = messages[-1]
    assert last_event == "end" and last_id is None
    assert json.loads(last_data) | {"id": ""} == {
        "id": "",
        "status": "succeeded",
        "error": None,
        "reason": "finished",
    }
    events = engine_events(messages)
    ids = [int(event_id) for event_id, _, _ in messages if event_id is not None]
    assert ids == [event["sequence"] for event in events], "id is the event's own sequence"
    assert ids == sorted(set(ids))
    kinds = [next(key for key in event if key.endswith("Event")) for event in events]
    assert kinds[0] == "preludeEvent" and kinds[-1] == "cancelEvent"
    assert {"resourcePreEvent", "resOutputsEvent", "summaryEvent"} <= set(kinds)
    summary = next(event["summaryEvent"] for event in events if "summaryEvent" in event)
    assert summary["resourceChanges"] == {"create": 4}
    severities = {event.get("diagnosticEvent", {}).get("severity") for event in events}
    assert "debug" not in severities

    # With debug: every event the engine sent, numbered 0, 1, 2, … with no gap.
    with_debug = list(service.events(job["id"], debug=True))
    assert all(
        (event == "log") == ("diagnosticEvent" in data or "stdoutEvent" in data)
        for _, event, data in with_debug
        if event in ("engine", "log")
    )
    every = engine_events(with_debug)
    assert [event["sequence"] for event in every] == list(range(len(every)))
    assert any(event.get("diagnosticEvent", {}).get("severity") == "debug" for event in every)
    assert [event for event in every if event["sequence"] in ids] == events

    # The provider writes the marker file, then the engine reports the marker created.
    written = shared.marker("sse").stat().st_mtime
    seen = next(
        at
        for at, (_, event, data) in received
        if event == "engine" and _urn(json.loads(data)).endswith("::greeter-marker")
    )
    assert 0 <= seen - written < 1.0, f"the event arrived {seen - written:.2f}s after the fact"

    replayed = list(service.events(job["id"]))
    assert [m for m in replayed if m[1] != "status"] == [m for m in messages if m[1] != "status"]
    for last in (ids[-3], ids[0], 0):
        resumed = list(service.events(job["id"], last_event_id=str(last)))
        resumed_ids = [int(event_id) for event_id, _, _ in resumed if event_id is not None]
        assert resumed_ids == [i for i in ids if i > last], "no event replayed or skipped"
        assert [event for _, event, _ in resumed][-2:] == ["status", "end"]
    for bad in ("abc", "99999999999999999999", "\N{SUPERSCRIPT TWO}", "-1"):
        response = service.http.get(
            f"/jobs/{job['id']}/events", headers={b"Last-Event-ID": bad.encode("latin-1")}
        )
        assert response.status_code == 422, (bad, response.text)
        assert "Last-Event-ID" in response.json()["detail"]


def _urn(event: dict[str, object]) -> str:
    outputs = event.get("resOutputsEvent")
    if not isinstance(outputs, dict):
        return ""
    return str(outputs.get("metadata", {}).get("urn", ""))


def test_deploy_sets_the_image_config_and_runs_up(shared: Shared) -> None:
    service = shared.service
    bad = service.http.post("/environments/deploy/deploy", json={"image": "team/app"})
    assert bad.status_code == 422
    assert "neither a tag nor a digest" in bad.json()["detail"]
    listed = service.http.get("/jobs", params={"environment": "deploy"}).json()["items"]
    assert listed == [], "a refused request stores nothing"

    image = "team/app@sha256:" + "ab" * 32
    job = service.wait(service.post("/environments/deploy/deploy", {"image": image})["id"])
    assert job["status"] == "succeeded", job
    assert job["operation"] == "up" and job["image"] == image
    assert job["config"] == {"greeting": image}
    assert job["outputs"]["greeting"] == image
    assert image in (shared.project / "Pulumi.deploy.yaml").read_text()


def test_a_secret_never_leaks(shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is set while the service runs: its spare worker must notice the new secret."""
    service, secret = shared.service, "s3cr3t-Value-that-must-not-leak"
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    stack = Engine.configure(shared.state_dir).stack(shared.project, "secret")
    stack.set_config("token", auto.ConfigValue(secret, secret=True))
    responses: list[str] = []

    def get(path: str) -> str:
        response = service.http.get(path)
        assert response.status_code == 200, response.text
        responses.append(response.text)
        return response.text

    up = service.wait(service.post("/environments/secret/up")["id"])
    assert up["status"] == "succeeded", up
    assert up["outputs"]["token_length"] == "[secret]"
    assert up["outputs"]["unsecret_token"] == "[secret]"
    failed = service.post("/environments/secret/up", {"config": {"fail": True}})
    assert service.wait(failed["id"])["status"] == "failed"
    refused = service.http.post("/environments/secret/up", json={"config": {"token": "x"}})
    assert refused.status_code == 422
    detail = json.loads(get("/environments/secret"))
    assert detail["config"]["provider-free-fixture:token"] == "[secret]"
    assert detail["outputs"]["token_length"] == "[secret]"
    assert detail["outputs"]["unsecret_token"] == "[secret]"
    get("/environments")
    get("/jobs")
    for job_id in (up["id"], failed["id"]):
        get(f"/jobs/{job_id}")
        get(f"/jobs/{job_id}/log")
        responses.extend(data for _, _, data in service.events(job_id))
    assert "the program printed [secret]" in get(f"/jobs/{up['id']}/log")

    stored = b"".join(path.read_bytes() for path in shared.state_dir.glob("automation.db*"))
    for where, text in [
        ("API responses", "\n".join(responses)),
        ("service log", service.log),
        ("job database", stored.decode(errors="replace")),
    ]:
        assert secret not in text, f"the secret leaked into the {where}"
    assert b"the program printed [secret]" in stored, "the database holds the redacted log"
