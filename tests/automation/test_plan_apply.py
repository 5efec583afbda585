"""Plan → approve → apply: change lists, saved plans applied exactly, four-eyes approval,
destroy confirmation and the audit list.

The real service (`python -m automation`) and the real engine on copies of the fixture; the
expected change lists are what the engine's own steps must be for each edit (the fixture's
diff: `path` forces a replacement, `content` updates in place).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from automation.api import create_app
from automation.settings import Settings
from tests.automation.conftest import StartService
from tests.automation.running_service import PASSPHRASE, Service
from tests.conftest import copy_provider_free_project, marker_dir

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(180)

STACK = "pulumi:pulumi:Stack"
MARKER = "pulumi-python:dynamic:Resource"
PROVIDER = "pulumi:providers:pulumi-python"
GREETER = "fixture:index:Greeter"


def succeeded(service: Service, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    job = service.wait(service.post(path, body)["id"])
    assert job["status"] == "succeeded", job
    return job


def ops(job: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """name -> (type, op); the stack comes first (the two markers register in parallel, so
    the engine may step over them in either order)."""
    assert job["changes"][0]["type"] == STACK
    return {change["name"]: (change["type"], change["op"]) for change in job["changes"]}


def change(job: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [entry for entry in job["changes"] if entry["name"] == name]
    assert len(found) == 1, job["changes"]
    return found[0]


def test_change_lists_name_each_step_and_property(
    start_service: StartService, provider_free_project: Path, tmp_path: Path
) -> None:
    service = start_service(
        image_config_key="image", config_allowlist="greeting,farewell,marker_dir"
    )
    created = succeeded(service, "/environments/dev/up")
    assert ops(created) == {
        "provider-free-fixture-dev": (STACK, "create"),
        "greeter": (GREETER, "create"),
        "default": (PROVIDER, "create"),
        "greeter-marker": (MARKER, "create"),
        "farewell": (MARKER, "create"),
    }
    farewell = change(created, "farewell")
    assert farewell["urn"].endswith(f"::{MARKER}::farewell")
    assert farewell["diff"]["content"] == {"kind": "add", "old": None, "new": "goodbye"}
    assert "__provider" not in farewell["diff"], "the dynamic provider's code is not a property"

    update = succeeded(service, "/environments/dev/preview", {"config": {"farewell": "ciao"}})
    assert ops(update) == {
        "provider-free-fixture-dev": (STACK, "same"),
        "greeter": (GREETER, "same"),
        "default": (PROVIDER, "update"),
        "greeter-marker": (MARKER, "same"),
        "farewell": (MARKER, "update"),
    }
    assert change(update, "farewell")["diff"] == {
        "content": {"kind": "update", "old": "goodbye", "new": "ciao"}
    }
    assert change(update, "greeter-marker")["diff"] == {}
    assert update["summary"] == {"same": 3, "update": 1}, "the summary leaves providers out"

    elsewhere = tmp_path / "elsewhere"
    replace = succeeded(
        service, "/environments/dev/preview", {"config": {"marker_dir": str(elsewhere)}}
    )
    assert change(replace, "greeter-marker")["op"] == "replace"
    assert change(replace, "greeter-marker")["diff"] == {
        "path": {
            "kind": "update",
            "old": str(marker_dir(provider_free_project, "dev") / "greeting.txt"),
            "new": str(elsewhere / "greeting.txt"),
        }
    }
    assert change(replace, "farewell")["op"] == "replace"

    program = provider_free_project / "__main__.py"
    text = program.read_text()
    start = text.index("farewell = MarkerFile(")
    end = text.index("token = config.get_secret")
    program.write_text(
        text[:start] + text[end:].replace('pulumi.export("farewell_path", farewell.path)\n', "")
    )
    delete = succeeded(service, "/environments/dev/preview")
    assert change(delete, "farewell")["op"] == "delete"
    assert change(delete, "farewell")["diff"]["content"] == {
        "kind": "delete",
        "old": "goodbye",
        "new": None,
    }
    assert change(delete, "greeter-marker")["op"] == "same"


def test_preview_then_apply_ships_exactly_the_previewed_change(
    start_service: StartService, provider_free_project: Path
) -> None:
    service = start_service(image_config_key="image")
    succeeded(service, "/environments/dev/up")
    preview = succeeded(service, "/environments/dev/preview", {"config": {"greeting": "planned"}})
    assert preview["plan_expires_at"] is not None
    # Edits after the preview: the apply runs the preview's snapshot, not these.
    path = provider_free_project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace("hello from dev", "edited after the preview"))
    program = provider_free_project / "__main__.py"
    program.write_text(program.read_text() + '\npulumi.export("edited", True)\n')

    response = service.http.post(f"/jobs/{preview['id']}/apply")
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/jobs/{response.json()['id']}"
    applied = service.wait(response.json()["id"])
    assert applied["status"] == "succeeded", (applied["error"], applied["notes"])
    assert applied["applies"] == preview["id"]
    assert applied["operation"] == "up" and applied["source"] == preview["source"]
    assert applied["outputs"]["greeting"] == "planned" and "edited" not in applied["outputs"]
    assert (marker_dir(provider_free_project, "dev") / "greeting.txt").read_text() == "planned"
    assert ops(applied) == ops(preview), "the apply did what the preview said it would"
    assert service.job(preview["id"])["applied_by"] == applied["id"]
    assert applied["approved_by"] is None, "dev does not require approval"

    again = service.http.post(f"/jobs/{preview['id']}/apply")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"the plan of preview {preview['id']} was already applied by job {applied['id']};"
        " run a new preview"
    )
    not_a_preview = service.http.post(f"/jobs/{applied['id']}/apply")
    assert not_a_preview.status_code == 409
    assert "only a succeeded preview can be applied" in not_a_preview.json()["detail"]

    stale = succeeded(service, "/environments/dev/preview", {"config": {"greeting": "stale"}})
    landed = succeeded(service, "/environments/dev/up", {"config": {"greeting": "landed"}})
    refused = service.http.post(f"/jobs/{stale['id']}/apply")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"the stack of dev has changed since preview {stale['id']} ran: job {landed['id']}"
        " (up, succeeded) ran after it; run a new preview"
    )
    assert (marker_dir(provider_free_project, "dev") / "greeting.txt").read_text() == "landed"


def test_the_engine_refuses_an_apply_whose_program_left_the_plan(
    start_service: StartService, provider_free_project: Path, state_dir: Path
) -> None:
    """The saved plan is what constrains the apply: a plan for another change is refused by
    the engine itself, and the job fails with its message."""
    service = start_service(image_config_key="image")
    succeeded(service, "/environments/dev/up")
    first = succeeded(service, "/environments/dev/preview", {"config": {"greeting": "first"}})
    second = succeeded(service, "/environments/dev/preview", {"config": {"greeting": "second"}})
    plans = state_dir / "plans"
    assert (plans / f"{first['id']}.json").stat().st_mode & 0o777 == 0o600
    shutil.copy(plans / f"{first['id']}.json", plans / f"{second['id']}.json")
    # The plan's secrets are encrypted with the salt of the stack file its preview ran with.
    salt = re.compile(r"^encryptionsalt: .*$", re.MULTILINE)
    first_salt = salt.search((plans / f"{first['id']}.stack.yaml").read_text())
    assert first_salt is not None
    kept = plans / f"{second['id']}.stack.yaml"
    kept.write_text(salt.sub(first_salt.group(0), kept.read_text()))

    applied = service.wait(service.http.post(f"/jobs/{second['id']}/apply").json()["id"])
    assert applied["status"] == "failed", applied
    assert "violates plan" in applied["error"], applied["error"]
    assert (marker_dir(provider_free_project, "dev") / "greeting.txt").read_text() == (
        "hello from dev"
    )


TOKENS = {
    "alice": ["read", "operate:prod", "approve:prod"],
    "bob": ["read", "approve:prod"],
    "dave": ["read", "operate:prod"],
}


def token(name: str) -> str:
    return f"{name}-token-0123456789"


def test_four_eyes_in_an_environment_that_requires_approval(
    start_service: StartService,
) -> None:
    tokens = [
        {"name": name, "token": token(name), "scopes": scopes} for name, scopes in TOKENS.items()
    ]
    service = start_service(
        token=token("alice"),
        image_config_key="image",
        environments="dev,prod",
        tokens=json.dumps(tokens),
        require_approval="prod",
    )

    def post(who: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return service.http.post(path, json=body, headers={"Authorization": f"Bearer {token(who)}"})

    flow = "preview, then POST /jobs/{id}/apply with an approver's token (scope approve:prod)"
    up = post("alice", "/environments/prod/up")
    assert up.status_code == 409
    assert up.json()["detail"] == f"prod requires approval: up cannot run there directly; {flow}"
    for path, body in [
        ("/environments/prod/deploy", {"image": "team/app:v2"}),
        ("/environments/prod/refresh", None),
        ("/environments/prod/destroy", {"confirm": "prod"}),
        ("/environments/prod/rollback", None),
    ]:
        response = post("alice", path, body)
        assert response.status_code == 409, (path, response.text)
        assert flow in response.json()["detail"]
    wrong = post("alice", "/environments/prod/destroy", {"confirm": "dev"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == (
        'destroy needs {"confirm": "prod"}, the environment\'s name (given: \'dev\')'
    )
    assert post("dave", "/environments/dev/up").status_code == 403

    preview = service.wait(post("alice", "/environments/prod/preview").json()["id"])
    assert preview["status"] == "succeeded" and preview["requested_by"] == "alice"
    own = post("alice", f"/jobs/{preview['id']}/apply")
    assert own.status_code == 403
    assert own.json()["detail"] == (
        f"token 'alice' requested preview {preview['id']}: in prod another token must approve"
        " it (four-eyes)"
    )
    operator_only = post("dave", f"/jobs/{preview['id']}/apply")
    assert operator_only.status_code == 403
    assert "lacks the scope 'approve:prod'" in operator_only.json()["detail"]
    approved = post("bob", f"/jobs/{preview['id']}/apply")
    assert approved.status_code == 202, approved.text
    applied = service.wait(approved.json()["id"])
    assert applied["status"] == "succeeded", (applied["error"], applied["notes"])
    assert applied["approved_by"] == "bob" and applied["requested_by"] == "bob"
    assert applied["outputs"]["greeting"] == "hello from prod"

    second = post("alice", "/environments/prod/preview").json()
    assert post("alice", f"/jobs/{second['id']}/cancel").status_code in (200, 202)
    service.wait(second["id"])

    audit = service.http.get("/audit", params={"environment": "prod"})
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert [
        (e["actor"], e["operation"], e["outcome"], e["status"], e["job_id"]) for e in entries
    ] == [
        ("alice", "up", "refused", 409, None),
        ("alice", "deploy", "refused", 409, None),
        ("alice", "refresh", "refused", 409, None),
        ("alice", "destroy", "refused", 409, None),
        ("alice", "rollback", "refused", 409, None),
        ("alice", "preview", "accepted", 202, preview["id"]),
        ("alice", "apply", "refused", 403, preview["id"]),
        ("dave", "apply", "refused", 403, preview["id"]),
        ("bob", "apply", "approved", 202, applied["id"]),
        ("alice", "preview", "accepted", 202, second["id"]),
        ("alice", "cancel", "cancelled", entries[-1]["status"], second["id"]),
    ]
    assert all(entry["client"] == "127.0.0.1" for entry in entries)
    assert entries[0]["detail"] == up.json()["detail"]
    dev_audit = service.http.get("/audit", params={"environment": "dev"}).json()["items"]
    assert [(e["actor"], e["operation"], e["status"]) for e in dev_audit] == [("dave", "up", 403)]
    since = service.http.get("/audit", params={"since": entries[-1]["at"]}).json()["items"]
    assert [entry["id"] for entry in since] == [entries[-1]["id"]]


class Clock:
    """The service's clock, moved forward by the test."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def test_a_plan_expires_after_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_provider_free_project(tmp_path / "project")
    settings = Settings(
        project_dir=project,
        state_dir=tmp_path / "state",
        environments=["dev"],
        config_allowlist=["greeting"],
        plan_ttl_seconds=3600,
    )
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    clock = Clock()
    app = create_app(settings, clock=clock)
    with TestClient(app, base_url="http://127.0.0.1") as client:

        def finished(response: Any) -> dict[str, Any]:
            assert response.status_code == 202, response.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                job: dict[str, Any] = client.get(f"/jobs/{response.json()['id']}").json()
                if job["status"] not in ("queued", "running"):
                    return job
                time.sleep(0.05)
            raise AssertionError("the job did not finish in time")

        old = finished(client.post("/environments/dev/preview", json={"config": {"greeting": "a"}}))
        ended = datetime.fromisoformat(old["finished_at"])
        expires = datetime.fromisoformat(old["plan_expires_at"])
        assert abs(expires - ended - timedelta(seconds=3600)) < timedelta(seconds=5)

        clock.ahead = expires - datetime.now(UTC)
        expired = client.post(f"/jobs/{old['id']}/apply")
        assert expired.status_code == 409
        assert expired.json()["detail"] == (
            f"the plan of preview {old['id']} expired at {expires.isoformat()} (plans can be"
            " applied for 3600s); run a new preview"
        )

        fresh = finished(
            client.post("/environments/dev/preview", json={"config": {"greeting": "b"}})
        )
        clock.ahead += timedelta(seconds=3590)
        applied = finished(client.post(f"/jobs/{fresh['id']}/apply"))
        assert applied["status"] == "succeeded", applied["error"]
        assert applied["outputs"]["greeting"] == "b"
