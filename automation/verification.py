"""After a successful up: probe the deployed app until it answers well enough, or give up.

The target is a stack output (by default `url`, the load balancer's address) plus a path (by
default `/health`, what the target group checks). A probe passes when the status is the
expected one and, when configured, the JSON body holds the expected keys and values and a
response header carries the expected value (`{image}` / `{image_tag}` stand for the job's
image, to see that the new version is the one answering). `successes` passes in a row end
the verification; a failure resets the count; the deadline ends it as failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from automation.models import SECRET, Job, Probe, Verification
from automation.settings import VerifySpec

MAX_PROBES_KEPT = 100
PROBE_TIMEOUT_SECONDS = 5.0


def target_url(spec: VerifySpec, job: Job) -> tuple[str | None, str | None]:
    """(URL to probe, None) or (None, why verification is skipped)."""
    if not spec.enabled:
        return None, f"verification is off for {job.environment}"
    value = (job.outputs or {}).get(spec.output)
    if value is None:
        return None, f"the stack has no output {spec.output!r}: nothing to probe"
    if value == SECRET:
        return None, f"the output {spec.output!r} is a secret: it is not probed"
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return None, f"the output {spec.output!r} is not an http(s) URL"
    return value.rstrip("/") + spec.path, None


def _expected_header(spec: VerifySpec, job: Job) -> tuple[str, str] | None:
    if spec.header is None:
        return None
    image = job.image or ""
    tag = image.rsplit("@", 1)[0].rsplit(":", 1)[-1] if ":" in image else ""
    return spec.header.name, spec.header.value.replace("{image}", image).replace("{image_tag}", tag)


def _json_mismatch(expected: dict[str, Any], response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "the body is not JSON"
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    for key, value in expected.items():
        if body.get(key) != value:
            return f"body[{key!r}] is {body.get(key)!r}, expected {value!r}"
    return None


async def probe(client: httpx.AsyncClient, url: str, spec: VerifySpec, job: Job) -> Probe:
    started = time.perf_counter()
    at = datetime.now(UTC)
    try:
        response = await client.get(url, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        return Probe(
            at=at,
            ok=False,
            status=None,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=f"{type(error).__name__}: {error}"[:300],
        )
    latency = round((time.perf_counter() - started) * 1000, 1)
    problem = None
    if response.status_code != spec.status:
        problem = f"status {response.status_code}, expected {spec.status}"
    elif spec.json_match is not None:
        problem = _json_mismatch(spec.json_match, response)
    expected = _expected_header(spec, job)
    if problem is None and expected is not None:
        name, value = expected
        got = response.headers.get(name)
        if got != value:
            problem = f"header {name} is {got!r}, expected {value!r}"
    return Probe(
        at=at, ok=problem is None, status=response.status_code, latency_ms=latency, error=problem
    )


async def verify(
    spec: VerifySpec,
    job: Job,
    url: str,
    on_progress: Callable[[Verification], None],
    stop_requested: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Verification:
    """Probe `url` until `spec.successes` pass in a row (passed) or the deadline (failed);
    `stop_requested` ends it early with status `cancelled`."""
    state = Verification(status="verifying", url=url)
    deadline = time.monotonic() + spec.timeout_seconds
    in_a_row = 0
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while True:
            result = await probe(client, url, spec, job)
            state.probes = [*state.probes, result][-MAX_PROBES_KEPT:]
            in_a_row = in_a_row + 1 if result.ok else 0
            if in_a_row >= spec.successes:
                state.status = "passed"
                return state
            on_progress(state)
            if time.monotonic() + spec.interval_seconds > deadline:
                last = result.error or f"status {result.status}"
                state.status = "failed"
                state.reason = (
                    f"{spec.successes} passing probe(s) in a row were not seen within"
                    f" {spec.timeout_seconds:g}s ({len(state.probes)} probe(s); last: {last})"
                )
                return state
            waited = 0.0
            while waited < spec.interval_seconds:
                if stop_requested():
                    state.status = "cancelled"
                    state.reason = "stopped before it finished"
                    return state
                step = min(0.2, spec.interval_seconds - waited)
                await sleep(step)
                waited += step
