"""Schemathesis over the service's own OpenAPI, against the real process: examples from the
schema's edges (coverage), random ones (fuzzing) and chains of calls following the links it
infers (stateful). No 5xx, and every status code, content type and body as documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.automation.conftest import StartService

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-token-0123456789"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def test_schemathesis_finds_no_5xx_and_nothing_undocumented(
    start_service: StartService, tmp_path: Path
) -> None:
    service = start_service(
        token=TOKEN,
        tokens=json.dumps([{"name": "fuzz", "token": TOKEN, "scopes": ["read", "operate:*"]}]),
        queue_limit="1",  # most generated operations get 429: few real jobs compete for the CPU
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.env" = "dev"\n')  # reach past the 404 of a random name
    run = subprocess.run(
        [
            Path(sys.executable).with_name("schemathesis"),
            "--config-file",
            config,
            "run",
            f"{service.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            CHECKS,
            "--max-examples",
            "120",
            "--seed",
            "20261201",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated and int(generated.group(1)) >= 1000, report[-3000:]
    assert re.search(r"✅\s+Stateful", report) and "Scenarios:" in report, report[-3000:]
    print(report[report.index("SUMMARY") :])
