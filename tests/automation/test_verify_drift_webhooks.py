"""Deploys that check themselves: verification with automatic rollback, drift detection on
demand and on a schedule, signed webhooks.

The real service and engine on the fixture. The fixture exports its `greeting` config, so a
test points verification at that output and sets it to the URL of a local HTTP server whose
answers the test controls. Webhook signatures are checked with `hmac` here, independently of
the service's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.automation.conftest import StartService
from tests.automation.running_service import Service
from tests.conftest import marker_dir

pytestmark = pytest.mark.timeout(180)

SECRET = "webhook-secret-0123456789"
HANG_SECONDS = 7.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """/good/health answers 200 with JSON, /bad/health 500; /hook records and answers 200,
    /fail answers 500, /hang answers after HANG_SECONDS."""

    base: str
    received: list[Received] = field(default_factory=list)

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [json.loads(item.body) for item in self.received if item.path == path]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"{}") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/good/health":
                self._answer(200, b'{"status": "ok"}')
            else:
                self._answer(500, b'{"status": "broken"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            if self.path.startswith("/hang"):
                time.sleep(HANG_SECONDS)
            self._answer(500 if self.path == "/fail" else 200)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()


def hooks(server: Server, *endpoints: tuple[str, list[str] | None]) -> str:
    """AUTOMATION_WEBHOOKS for (path, events or None for all) on the test's server."""
    return json.dumps(
        [
            {
                "url": f"{server.base}{path}",
                "secret": SECRET,
                **({"events": events} if events else {}),
            }
            for path, events in endpoints
        ]
    )


def verify_on_greeting(**extra: Any) -> str:
    spec = {"output": "greeting", "successes": 2, "interval_seconds": 0.2, "timeout_seconds": 2}
    return json.dumps({"dev": {**spec, **extra}})


def finished(service: Service, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return service.wait(service.post(path, body)["id"], timeout=90)


def test_a_failed_verification_rolls_back_and_webhooks_tell(
    start_service: StartService, server: Server, provider_free_project: Path
) -> None:
    service = start_service(
        image_config_key="image",
        verify=verify_on_greeting(),
        webhooks=hooks(
            server,
            ("/hook", None),
            ("/fail", ["verification.failed"]),
            ("/hang?key=kept-out-of-the-record", ["verification.failed"]),
        ),
    )
    good = finished(
        service, "/environments/dev/up", {"config": {"greeting": f"{server.base}/good"}}
    )
    assert good["status"] == "succeeded", good
    verification = good["verification"]
    assert verification["status"] == "passed"
    assert verification["url"] == f"{server.base}/good/health"
    assert [probe["status"] for probe in verification["probes"]] == [200, 200]
    assert all(probe["ok"] and probe["latency_ms"] >= 0 for probe in verification["probes"])

    bad = finished(service, "/environments/dev/up", {"config": {"greeting": f"{server.base}/bad"}})
    assert bad["status"] == "failed", bad
    assert bad["error"].startswith("verification failed: 2 passing probe(s) in a row were not seen")
    assert bad["verification"]["status"] == "failed"
    assert {probe["status"] for probe in bad["verification"]["probes"]} == {500}
    assert bad["rolled_back_by"] is not None
    rollback = service.wait(bad["rolled_back_by"], timeout=90)
    assert rollback["status"] == "succeeded", rollback
    assert (rollback["rollback_of"], rollback["rolls_back"]) == (good["id"], bad["id"])
    assert rollback["requested_by"] == "automation"
    assert rollback["outputs"]["greeting"] == f"{server.base}/good"
    assert rollback["verification"]["status"] == "passed"
    marker = marker_dir(provider_free_project, "dev") / "greeting.txt"
    assert marker.read_text() == f"{server.base}/good"
    started = _time(rollback["started_at"]) - _time(bad["finished_at"])
    assert started < 3, f"the rollback waited {started:.1f}s: webhooks delayed the runner"

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(server.events()) < 5:
        time.sleep(0.1)
    seen = [(event["event"], event["job"]["id"]) for event in server.events("/hook")]
    assert sorted(seen) == sorted(
        [
            ("job.finished", good["id"]),
            ("verification.failed", bad["id"]),
            ("job.finished", bad["id"]),
            ("rollback.started", rollback["id"]),
            ("job.finished", rollback["id"]),
        ]
    )
    for item in server.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), item.body, hashlib.sha256).hexdigest()
        assert item.headers["X-Automation-Signature"] == expected
        payload = json.loads(item.body)
        assert item.headers["X-Automation-Delivery"] == payload["id"]
        assert item.headers["X-Automation-Event"] == payload["event"]

    deliveries = _deliveries(service, minimum=5 + 3 + 3)
    assert len(deliveries) == 11, deliveries
    hook = [d for d in deliveries if d["endpoint"] == f"{server.base}/hook"]
    assert len(hook) == 5 and all(d["ok"] and d["status"] == 200 for d in hook)
    failing = [d for d in deliveries if d["endpoint"] == f"{server.base}/fail"]
    assert sorted(d["attempt"] for d in failing) == [1, 2, 3]
    assert all(d["status"] == 500 and not d["ok"] for d in failing)
    assert len({d["delivery"] for d in failing}) == 1, "one delivery, tried 3 times"
    hanging = [d for d in deliveries if d["endpoint"] == f"{server.base}/hang"]
    assert sorted(d["attempt"] for d in hanging) == [1, 2, 3]
    assert all(not d["ok"] and "Timeout" in (d["error"] or "") for d in hanging)
    assert all(4_900 < d["duration_ms"] < 6_500 for d in hanging)
    assert "kept-out" not in json.dumps(deliveries), "an endpoint's query is not shown"
    assert "kept-out" not in service.log, "nor logged"


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _deliveries(service: Service, minimum: int) -> list[dict[str, Any]]:
    """Every recorded attempt, once at least `minimum` are in (retries take seconds)."""
    deadline = time.monotonic() + 60
    while True:
        items: list[dict[str, Any]] = service.http.get(
            "/webhooks/deliveries", params={"limit": 500}
        ).json()["items"]
        if len(items) >= minimum or time.monotonic() > deadline:
            return items
        time.sleep(0.5)


def test_verification_is_skipped_without_the_output_and_rollback_can_be_off(
    start_service: StartService, server: Server
) -> None:
    service = start_service(
        image_config_key="image", verify=verify_on_greeting(rollback=False, output="url")
    )
    skipped = finished(service, "/environments/dev/up")
    assert skipped["status"] == "succeeded"
    assert skipped["verification"] == {
        "status": "skipped",
        "url": None,
        "reason": "the stack has no output 'url': nothing to probe",
        "probes": [],
    }
    service.stop()
    service = start_service(image_config_key="image", verify=verify_on_greeting(rollback=False))
    bad = finished(service, "/environments/dev/up", {"config": {"greeting": f"{server.base}/bad"}})
    assert bad["status"] == "failed" and bad["rolled_back_by"] is None
    assert "no automatic rollback: it is off for dev" in bad["notes"]


def test_drift_is_found_and_shown_and_never_holds_a_deploy_back(
    start_service: StartService, server: Server, provider_free_project: Path
) -> None:
    service = start_service(
        image_config_key="image",
        config_allowlist="greeting,delay_seconds",
        webhooks=hooks(server, ("/hook", ["drift.found"])),
    )
    assert service.http.get("/environments/dev").json()["drift"] == {
        "status": "unknown",
        "checked_at": None,
        "job_id": None,
        "resources": [],
    }
    assert finished(service, "/environments/dev/up")["status"] == "succeeded"
    clean = finished(service, "/environments/dev/drift")
    assert clean["status"] == "succeeded", clean
    drift = service.http.get("/environments/dev").json()["drift"]
    assert (drift["status"], drift["job_id"], drift["resources"]) == ("none", clean["id"], [])

    marker = marker_dir(provider_free_project, "dev") / "greeting.txt"
    marker.write_text("edited by hand")
    found = finished(service, "/environments/dev/drift")
    assert found["status"] == "succeeded", found
    drift = service.http.get("/environments/dev").json()["drift"]
    assert drift["status"] == "drifted" and drift["job_id"] == found["id"]
    ((resource),) = drift["resources"]
    assert resource["name"] == "greeter-marker" and resource["op"] == "update"
    assert resource["diff"]["content"]["old"] == "hello from dev"
    assert resource["diff"]["content"]["new"] == "edited by hand"
    assert marker.read_text() == "edited by hand", "a drift check changes nothing"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not server.events():
        time.sleep(0.1)
    assert [(e["event"], e["job"]["id"]) for e in server.events()] == [("drift.found", found["id"])]

    slow = service.post("/environments/dev/up", {"config": {"delay_seconds": 3}})
    first_drift = service.post("/environments/dev/drift")
    again = service.http.post("/environments/dev/drift")
    assert again.status_code == 200 and again.json()["id"] == first_drift["id"], "coalesced"
    deploy = service.post("/environments/dev/up", {"config": {"greeting": "after drift"}})
    order = sorted(
        (service.wait(job["id"], timeout=90) for job in (slow, first_drift, deploy)),
        key=lambda job: job["started_at"],
    )
    assert [job["id"] for job in order] == [slow["id"], deploy["id"], first_drift["id"]]


def test_drift_checks_run_on_their_schedule(start_service: StartService) -> None:
    service = start_service(image_config_key="image", drift_schedule=json.dumps({"dev": 1}))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = service.http.get("/jobs", params={"environment": "dev"}).json()["items"]
        scheduled = [job for job in jobs if job["operation"] == "drift"]
        if scheduled:
            break
        time.sleep(0.2)
    assert scheduled and scheduled[0]["requested_by"] == "schedule"
