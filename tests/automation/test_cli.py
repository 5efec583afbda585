"""deployctl against the real service on the fixture: exit codes, --json, following a job,
resuming a dropped event stream, Ctrl-C.

The client runs as its installed console script, in a process of its own, with stdout a pipe
(so it does not follow unless told, and follows with one line per step)."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from typing import IO, Any

import pytest

from tests.automation.cli_process import StreamCutter, deployctl, start_deployctl
from tests.automation.conftest import StartService
from tests.automation.running_service import engine_events, free_port

pytestmark = pytest.mark.timeout(120)

READER_TOKEN = "reader-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
TOKENS = json.dumps(
    [
        {"name": "reader", "token": READER_TOKEN, "scopes": ["read"]},
        {"name": "operator", "token": OPERATOR_TOKEN, "scopes": ["read", "operate:*"]},
    ]
)
STEP_LINE = re.compile(r"^  (\S+) (\S+) (\S+) (creating|created|updating|updated)\b", re.M)


def as_job(stdout: str) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(stdout)
    return job


class Printed:
    """What a running process prints on stdout, line by line, read by a thread of its own (so
    a wait has a deadline even when the process prints nothing)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, wanted: str, timeout: float = 30) -> str:
        """The first line from now on that contains `wanted`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if wanted in line:
                return line
        raise AssertionError(f"{wanted!r} not printed; got {self.seen}")

    def job_id(self) -> str:
        return self.wait_for("Job ").split()[1].rstrip(":")


def test_a_followed_job_ends_with_its_exit_code_and_result(start_service: StartService) -> None:
    service = start_service(image_config_key="image")
    url = service.base_url

    failed = deployctl(url, "up", "dev", "--follow", "-m", "first", "-c", "fail=true")
    assert failed.code == 1, failed
    assert "Error: " in failed.stdout and "asked to fail" in failed.stdout, failed.stdout
    assert "greeter-marker creating failed" in failed.stdout, failed.stdout
    assert failed.stdout.endswith("(up dev): failed\n"), failed.stdout

    deployed = deployctl(url, "deploy", "dev", "team/app:1.0", "--follow", "--json")
    assert deployed.code == 0, deployed
    job = as_job(deployed.stdout)  # nothing but the final job on stdout
    assert (job["operation"], job["image"], job["status"]) == ("up", "team/app:1.0", "succeeded")
    assert job["outputs"]["greeting"] == "hello from dev"
    assert deployed.stderr == ""


def test_without_follow_the_accepted_job_is_printed_at_once(start_service: StartService) -> None:
    service = start_service()
    url = service.base_url

    queued = deployctl(url, "preview", "dev", "--json", "-c", "delay_seconds=1")
    assert queued.code == 0, queued
    job = as_job(queued.stdout)
    assert job["status"] in ("queued", "running") and job["config"] == {"delay_seconds": "1"}

    assert service.wait(job["id"])["status"] == "succeeded"
    applied = deployctl(url, "apply", job["id"], "--follow", "--json")
    assert applied.code == 0, applied
    assert as_job(applied.stdout)["applies"] == job["id"]

    def answer(*args: str) -> Any:
        shown = deployctl(url, *args, "--json")
        assert shown.code == 0, (args, shown)
        return json.loads(shown.stdout)

    assert len(answer("jobs", "--env", "dev", "--limit", "2")["items"]) == 2
    assert answer("job", job["id"])["status"] == "succeeded"
    assert [env["name"] for env in answer("envs")] == ["dev"]
    assert answer("env", "dev")["outputs"]["greeting"] == "hello from dev"
    assert [entry["operation"] for entry in answer("audit", "--env", "dev")["items"]] == [
        "preview",
        "apply",
    ]
    assert "preview" in deployctl(url, "job", job["id"]).stdout
    assert "Resources:" in deployctl(url, "logs", job["id"]).stdout

    drift = deployctl(url, "drift", "dev", "--follow", "--json")
    assert drift.code == 0, drift
    checked = as_job(drift.stdout)
    assert checked["operation"] == "drift" and checked["status"] == "succeeded"
    assert answer("env", "dev")["drift"]["job_id"] == checked["id"]
    assert "Drift: none" in deployctl(url, "env", "dev").stdout
    assert answer("deliveries") == {"items": [], "next_cursor": None}, "no webhooks configured"
    assert answer("ready") == {"status": "ready"}


def test_refusals_exit_4_and_usage_or_api_errors_exit_2(start_service: StartService) -> None:
    service = start_service(token=OPERATOR_TOKEN, tokens=TOKENS)
    url = service.base_url

    forbidden = deployctl(url, "up", "dev", token=READER_TOKEN)
    assert forbidden.code == 4, forbidden
    assert "lacks the scope 'operate:dev'" in forbidden.stderr
    nothing_to_go_back_to = deployctl(url, "rollback", "dev", token=OPERATOR_TOKEN)
    assert nothing_to_go_back_to.code == 4, nothing_to_go_back_to
    assert "409 Conflict" in nothing_to_go_back_to.stderr

    refresh = deployctl(url, "refresh", "dev", token=OPERATOR_TOKEN)  # no terminal: no following
    assert refresh.code == 0, refresh
    refresh_id = re.match(r"Job (\S+): refresh dev queued\n", refresh.stdout)
    assert refresh_id, refresh.stdout
    assert f"deployctl job {refresh_id[1]}" in refresh.stdout
    assert service.wait(refresh_id[1])["status"] == "succeeded"
    not_a_preview = deployctl(url, "apply", refresh_id[1], token=OPERATOR_TOKEN)
    assert not_a_preview.code == 4, not_a_preview
    assert "preview" in not_a_preview.stderr
    not_an_up = deployctl(url, "rollback", "dev", "--to", refresh_id[1], token=OPERATOR_TOKEN)
    assert not_an_up.code == 4 and refresh_id[1] in not_an_up.stderr, not_an_up

    unreachable = f"http://127.0.0.1:{free_port()}"
    for args, token, says in [
        (("destroy", "dev"), OPERATOR_TOKEN, "destroy needs --confirm"),
        (("up", "dev", "-c", "greeting"), OPERATOR_TOKEN, "'greeting' is not KEY=VALUE"),
        (("up", "dev", "-c", "color=blue"), OPERATOR_TOKEN, "color"),  # 422: not allowlisted
        (("env", "nowhere"), OPERATOR_TOKEN, "unknown environment"),  # 404
        (("envs",), "not-a-token-of-the-service", "401"),
        (("jobs", "--limit", "0"), OPERATOR_TOKEN, "--limit"),
        (("--url", "ftp://x", "envs"), OPERATOR_TOKEN, "not an http:// or https:// URL"),
        (
            ("--url", unreachable, "envs"),
            OPERATOR_TOKEN,
            f"cannot reach the automation service at {unreachable}",
        ),
    ]:
        result = deployctl(url, *args, token=token)
        assert result.code == 2 and says in result.stderr, (args, result)
        assert OPERATOR_TOKEN not in result.stdout + result.stderr
    audit = service.http.get("/audit")
    assert [entry["status"] for entry in audit.json()["items"]] == [403, 409, 202, 409, 409]


def test_a_dropped_stream_resumes_without_gap_or_repeat(start_service: StartService) -> None:
    service = start_service()
    cutter = StreamCutter(int(service.env["AUTOMATION_PORT"]), b"::greeter-marker")
    try:
        up = deployctl(cutter.url, "up", "dev", "--follow", "-c", "delay_seconds=2")
    finally:
        cutter.close()
    assert up.code == 0, up
    assert cutter.cut.is_set(), "the proxy never cut the stream"
    first, *resumed = cutter.last_event_ids
    assert first is None and len(resumed) == 1 and resumed[0] is not None, cutter.last_event_ids

    started = re.match(r"Job (\S+): up dev queued\n", up.stdout)
    assert started, f"the job id is not the first line:\n{up.stdout}"
    job_id = started[1]
    assert "Resources: 4 created" in up.stdout
    assert 'greeting: "hello from dev"' in up.stdout
    assert up.stdout.endswith(f"Job {job_id} (up dev): succeeded\n"), up.stdout
    events = engine_events(list(service.events(job_id)))
    cut = next(i for i, event in enumerate(events) if "::greeter-marker" in json.dumps(event))
    assert resumed[0] == events[cut - 1]["sequence"], "not resumed after the last whole event"
    expected: Counter[tuple[str, str]] = Counter()
    for event in events:
        for key, word in (("resourcePreEvent", "creating"), ("resOutputsEvent", "created")):
            if key in event:
                name = event[key]["metadata"]["urn"].rsplit("::", 1)[1]
                expected[(name, word)] += 1
    printed = Counter((name, word) for _, _, name, word in STEP_LINE.findall(up.stdout))
    assert printed == expected, up.stdout
    assert sum(expected.values()) == 10


def test_ctrl_c_leaves_the_job_running_unless_asked_to_cancel(
    start_service: StartService,
) -> None:
    service = start_service()
    # Long enough for a second deployctl to start (seconds on a loaded machine) while it runs.
    follower = start_deployctl(service.base_url, "up", "dev", "--follow", "-c", "delay_seconds=15")
    follower_out = Printed(follower)
    job_id = follower_out.job_id()
    follower_out.wait_for("greeter-marker creating")
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=30) == 3  # seconds on a loaded machine
    assert follower.stderr is not None and "goes on" in follower.stderr.read()
    assert service.job(job_id)["status"] == "running"

    queued = start_deployctl(
        service.base_url, "up", "dev", "--follow", "--cancel-on-interrupt", "-c", "farewell=again"
    )
    queued_out = Printed(queued)
    queued_id = queued_out.job_id()
    queued_out.wait_for("up dev: queued")
    assert service.job(job_id)["status"] == "running", "the second job is really queued"

    queued.send_signal(signal.SIGINT)
    assert queued.wait(timeout=30) == 3
    assert service.job(queued_id)["status"] == "cancelled"
    queued_out.wait_for(f"Job {queued_id} (up dev): cancelled")
    assert service.wait(job_id)["status"] == "succeeded", "the job left running did not go on"
