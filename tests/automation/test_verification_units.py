"""What counts as a passing probe, and the settings that configure verification, drift
schedules and webhooks (their errors name the variable and never echo a secret)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from automation.models import Job, JobStatus, Operation
from automation.settings import Settings, VerifySpec, describe_errors
from automation.verification import probe, target_url, verify


def job(outputs: dict[str, Any] | None, image: str | None = None) -> Job:
    return Job(
        id="j1",
        environment="prod",
        operation=Operation.UP,
        status=JobStatus.VERIFYING,
        created_at=datetime.now(UTC),
        outputs=outputs,
        image=image,
    )


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/health"
        return httpx.Response(status, json=body, headers=headers)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def run_probe(
    client: httpx.AsyncClient, spec: VerifySpec, deployed: Job
) -> tuple[bool, str | None]:
    async def once() -> tuple[bool, str | None]:
        async with client:
            result = await probe(client, "http://app.example/health", spec, deployed)
        return result.ok, result.error

    return asyncio.run(once())


@pytest.mark.parametrize(
    ("status", "body", "headers", "spec", "expected"),
    [
        (200, {"status": "ok"}, {}, {}, (True, None)),
        (503, {}, {}, {}, (False, "status 503, expected 200")),
        (204, None, {}, {"status": 204}, (True, None)),
        (200, {"status": "ok", "db": "up"}, {}, {"json": {"db": "up"}}, (True, None)),
        (
            200,
            {"db": "down"},
            {},
            {"json": {"db": "up"}},
            (False, "body['db'] is 'down', expected 'up'"),
        ),
        (200, ["x"], {}, {"json": {"db": "up"}}, (False, "the body is not a JSON object")),
        (
            200,
            {},
            {"x-app-version": "1.4.2"},
            {"header": {"name": "x-app-version", "value": "{image_tag}"}},
            (True, None),
        ),
        (
            200,
            {},
            {"x-app-version": "1.4.1"},
            {"header": {"name": "x-app-version", "value": "{image_tag}"}},
            (False, "header x-app-version is '1.4.1', expected '1.4.2'"),
        ),
    ],
)
def test_a_probe_passes_only_on_what_is_expected(
    status: int,
    body: Any,
    headers: dict[str, str],
    spec: dict[str, Any],
    expected: tuple[bool, str | None],
) -> None:
    deployed = job({"url": "http://app.example"}, image="team/app:1.4.2")
    assert run_probe(answering(status, body, headers), VerifySpec(**spec), deployed) == expected


@pytest.mark.parametrize(
    ("outputs", "reason"),
    [
        (None, "the stack has no output 'url': nothing to probe"),
        ({"url": "[secret]"}, "the output 'url' is a secret: it is not probed"),
        ({"url": "app.example"}, "the output 'url' is not an http(s) URL"),
    ],
)
def test_what_cannot_be_probed_is_skipped_with_a_reason(
    outputs: dict[str, Any] | None, reason: str
) -> None:
    assert target_url(VerifySpec(), job(outputs)) == (None, reason)
    assert target_url(VerifySpec(), job({"url": "http://lb.example/"})) == (
        "http://lb.example/health",
        None,
    )


def test_a_failure_resets_the_count_of_passes_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([200, 500, 200, 200, 200])
    transport = httpx.MockTransport(lambda _request: httpx.Response(next(answers)))
    original = httpx.AsyncClient.__init__

    def with_transport(self: httpx.AsyncClient, **kwargs: Any) -> None:
        original(self, transport=transport, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", with_transport)

    async def no_wait(_seconds: float) -> None:
        pass

    spec = VerifySpec(successes=3, interval_seconds=0.01, timeout_seconds=60)
    result = asyncio.run(
        verify(spec, job({}), "http://x/health", lambda _s: None, lambda: False, no_wait)
    )
    assert result.status == "passed"
    assert [p.status for p in result.probes] == [200, 500, 200, 200, 200]


def _settings(tmp_path: Path, **values: Any) -> Settings:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    for name in ("dev", "prod"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    return Settings(project_dir=tmp_path, state_dir=tmp_path / "state", **values)


def test_verify_settings_default_per_environment(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, verify=json.dumps({"*": {"successes": 1}, "prod": {"path": "/ready"}})
    )
    assert settings.verify_spec("prod").path == "/ready"
    assert settings.verify_spec("prod").successes == 3, "an entry is whole, not merged with *"
    assert settings.verify_spec("dev").successes == 1
    assert _settings(tmp_path).verify_spec("dev") == VerifySpec()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"verify": '{"qa": {}}'}, "AUTOMATION_VERIFY: 'qa' is not an environment"),
        ({"verify": '{"prod": {"succeses": 2}}'}, "AUTOMATION_VERIFY.prod.succeses"),
        ({"verify": "{"}, "AUTOMATION_VERIFY: not valid JSON"),
        ({"drift_schedule": '{"prod": 0.5}'}, "prod: 0.5 s; an interval is 1 s to 30 days"),
        ({"drift_schedule": '{"qa": 60}'}, "AUTOMATION_DRIFT_SCHEDULE: 'qa' is not an environment"),
        (
            {"webhooks": '[{"url": "ftp://x", "secret": "s3cr3t-0123456789abcdef"}]'},
            "AUTOMATION_WEBHOOKS[0].url",
        ),
        (
            {"webhooks": '[{"url": "http://x", "secret": "short-s3cr3t"}]'},
            "a webhook secret needs at least 16 characters",
        ),
        (
            {
                "webhooks": '[{"url": "http://x", "secret": "s3cr3t-0123456789abcdef",'
                ' "events": ["job.done"]}]'
            },
            "unknown event 'job.done'",
        ),
        (
            {
                "webhooks": '[{"url": "http://x", "secret": "s3cr3t-0123456789abcdef",'
                ' "environments": ["qa"]}]'
            },
            "AUTOMATION_WEBHOOKS[0].environments: 'qa' is not an environment",
        ),
    ],
)
def test_bad_settings_name_the_variable(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as failure:
        _settings(tmp_path, **values)
    described = describe_errors(failure.value)
    assert message in described, described
    assert "s3cr3t" not in described
