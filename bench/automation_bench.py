"""Benchmark: the automation service against the raw `pulumi` CLI on the provider-free project.

    .venv/bin/python bench/automation_bench.py [--rounds 7] [--settle 2.5] [--delays 2,0]

Measures, on a private copy of tests/fixtures/provider_free with a file backend in a temporary
state dir (nothing outside it is touched):

- preview, up (no changes) and deploy (set a config value, then an up that updates the
  dynamic resource) end to end through the service (POST, then follow the job's event
  stream until it closes) against the same work done with the CLI by hand
  (`pulumi preview --save-plan`, as every service preview saves its plan for apply;
  `pulumi up --yes --skip-preview`; `pulumi config set` + that up),
  interleaved round by round, alternating which goes first. Goal: service <= 1.10x CLI.
- time from the POST to the first engine event on the SSE stream.
- the cost of a job's source snapshot: capturing the tree (cold: every file read and hashed;
  warm: unchanged files known by inode, size and mtime) and materializing the job's private
  copy, on this repository itself (a git checkout, app/ included) and on the bench project.
  The bench project carries a copy of this repo's app/ and infra/ (inert for its program), so
  every service job above snapshots a tree of the real project's size.
- four environments deployed at once against one (goal <= 1.5x), with the fixture's create /
  update taking each of `--delays` seconds (a stand-in for waiting on a cloud API; 0 makes
  the runs purely CPU-bound, which two cores cannot run four at a time).

Between runs the bench waits `--settle` seconds so that the run starts on a quiet machine: the
service uses that time to warm its next worker, as it would between requests in real use.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from automation.engine import Engine  # noqa: E402
from automation.snapshots import SnapshotStore  # noqa: E402
from tests.conftest import copy_provider_free_project, write_stack_file  # noqa: E402

PARALLEL_ENVIRONMENTS = ("b1", "b2", "b3", "b4")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Bench:
    def __init__(self, root: Path, settle: float, verbose: bool = False) -> None:
        self.root = root
        self.settle = settle
        self.verbose = verbose
        self.project = copy_provider_free_project(root / "project")
        for folder in ("app", "infra"):  # a source tree of the real project's size
            shutil.copytree(
                REPO_ROOT / folder,
                self.project / folder,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        for name in PARALLEL_ENVIRONMENTS:
            write_stack_file(self.project, name, f"hello from {name}")
        self.state_dir = root / "state"
        passphrase = secrets.token_hex(16)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOMATION_", "PULUMI_"))}
        base["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        engine = Engine.configure(self.state_dir)
        self.cli = str(engine.bin_dir / "pulumi")
        # The CLI gets what the service gives its workers (worker_environment): the same
        # Python bytecode cache for the program and the dynamic-provider host.
        self.cli_env = {
            **{k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"},
            **engine.env_vars(),
            "PYTHONPYCACHEPREFIX": str(self.state_dir / "pycache"),
        }
        port = free_port()
        self.service_env = {
            **base,
            "AUTOMATION_PROJECT_DIR": str(self.project),
            "AUTOMATION_STATE_DIR": str(self.state_dir),
            "AUTOMATION_PORT": str(port),
            "AUTOMATION_ENVIRONMENTS": ",".join(("dev", *PARALLEL_ENVIRONMENTS)),
            "AUTOMATION_CONFIG_ALLOWLIST": "greeting,delay_seconds",
            "AUTOMATION_IMAGE_CONFIG_KEY": "greeting",
            "AUTOMATION_LOG_LEVEL": "warning",
        }
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        self.service: subprocess.Popen[bytes] | None = None
        self.counter = 0

    # The service

    def start(self) -> None:
        self.service = subprocess.Popen(
            [sys.executable, "-m", "automation"],
            cwd=REPO_ROOT,
            env=self.service_env,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "service.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the service did not become ready; see service.log in the work dir")

    def stop(self) -> None:
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            self.service.wait(timeout=60)
        self.http.close()

    def submit(self, environment: str, operation: str, body: dict[str, Any] | None = None) -> str:
        response = self.http.post(f"/environments/{environment}/{operation}", json=body)
        if response.status_code != 202:
            raise SystemExit(f"POST {operation} on {environment}: {response.text}")
        job_id: str = response.json()["id"]
        return job_id

    def follow(self, job_id: str, started: float) -> tuple[float, float]:
        """Seconds from `started` to the first engine event and to the end of the stream."""
        first: float | None = None
        with (
            httpx.Client(base_url=self.http.base_url, timeout=120) as client,
            client.stream("GET", f"/jobs/{job_id}/events") as response,
        ):
            for line in response.iter_lines():
                if first is None and line.startswith("id:"):
                    first = time.perf_counter() - started
        done = time.perf_counter() - started
        job = self.http.get(f"/jobs/{job_id}").json()
        if job["status"] != "succeeded":
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        return (done if first is None else first), done

    def via_service(
        self, environment: str, operation: str, body: dict[str, Any] | None = None
    ) -> tuple[float, float]:
        started = time.perf_counter()
        return self.follow(self.submit(environment, operation, body), started)

    # The raw CLI

    def pulumi(self, *args: str) -> None:
        subprocess.run(
            [self.cli, *args, "--non-interactive"],
            cwd=self.project,
            env=self.cli_env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cli_deploy(self, stack: str) -> None:
        self.pulumi("config", "set", "greeting", self.next_image(), "--stack", stack)
        self.pulumi("up", "--yes", "--skip-preview", "--stack", stack)

    def timed(self, label: str, action: Callable[[], object]) -> float:
        time.sleep(self.settle)
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        if self.verbose:
            print(f"  {label}: {elapsed:.2f}s", flush=True)
        return elapsed

    def next_image(self) -> str:
        self.counter += 1
        return f"team/app:v{self.counter}"


def compare(bench: Bench, rounds: int) -> dict[str, Any]:
    """Service against CLI, interleaved, alternating which runs first."""
    scenarios: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "preview": (
            lambda: bench.via_service("dev", "preview"),
            lambda: bench.pulumi(
                "preview", "--save-plan", str(bench.root / "plan.json"), "--stack", "dev"
            ),
        ),
        "up (no changes)": (
            lambda: bench.via_service("dev", "up"),
            lambda: bench.pulumi("up", "--yes", "--skip-preview", "--stack", "dev"),
        ),
        "deploy (config change + update)": (
            lambda: bench.via_service("dev", "deploy", {"image": bench.next_image()}),
            lambda: bench.cli_deploy("dev"),
        ),
    }
    results: dict[str, Any] = {}
    for name, (service, cli) in scenarios.items():
        bench.timed(f"{name}, service, warm-up", service)  # not counted
        bench.timed(f"{name}, cli, warm-up", cli)
        times: dict[str, list[float]] = {"service": [], "cli": []}
        for round_number in range(rounds):
            order = [("service", service), ("cli", cli)]
            if round_number % 2:
                order.reverse()
            for label, action in order:
                times[label].append(bench.timed(f"{name}, {label}", action))
        service_median = statistics.median(times["service"])
        cli_median = statistics.median(times["cli"])
        results[name] = {
            "service_s": round(service_median, 3),
            "cli_s": round(cli_median, 3),
            "ratio": round(service_median / cli_median, 3),
            "runs": {label: [round(t, 3) for t in values] for label, values in times.items()},
        }
    return results


def first_event(bench: Bench, rounds: int) -> dict[str, Any]:
    firsts = []
    for _ in range(rounds):
        time.sleep(bench.settle)
        first, _ = bench.via_service("dev", "preview")
        firsts.append(first)
    return {"median_s": round(statistics.median(firsts), 3), "runs": [round(t, 3) for t in firsts]}


def snapshot_cost(bench: Bench, rounds: int) -> dict[str, Any]:
    """Milliseconds to capture a tree (cold store, then warm) and to materialize a job's copy."""
    results: dict[str, Any] = {}
    for label, project in (("this repository", REPO_ROOT), ("bench project", bench.project)):
        cold: list[float] = []
        warm: list[float] = []
        copy: list[float] = []
        for round_number in range(rounds):
            store = SnapshotStore(bench.root / f"snapshots-{round_number}")
            started = time.perf_counter()
            source = store.capture(project)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.capture(project)
            warm.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.materialize(source.tree, "bench-job", project)
            copy.append(time.perf_counter() - started)
            files = len(store.manifest(source.tree))
            shutil.rmtree(bench.root / f"snapshots-{round_number}")
        results[label] = {
            "files": files,
            "capture_cold_ms": round(statistics.median(cold) * 1000, 1),
            "capture_warm_ms": round(statistics.median(warm) * 1000, 1),
            "materialize_ms": round(statistics.median(copy) * 1000, 1),
        }
    return results


def parallel(bench: Bench, rounds: int, delay: float) -> dict[str, Any]:
    """Deploy one environment, then all four at once (each an update taking `delay` s)."""
    for name in PARALLEL_ENVIRONMENTS:  # warm-up: create the stacks and their resources
        bench.via_service(name, "up", {"config": {"delay_seconds": delay}})

    def deploy(environments: tuple[str, ...]) -> float:
        time.sleep(bench.settle * len(environments))  # every environment's spare is warm
        started = time.perf_counter()
        jobs = [
            bench.submit(name, "deploy", {"image": bench.next_image()}) for name in environments
        ]
        with ThreadPoolExecutor(len(jobs)) as pool:
            list(pool.map(lambda job_id: bench.follow(job_id, started), jobs))
        return time.perf_counter() - started

    one: list[float] = []
    four: list[float] = []
    for round_number in range(rounds):
        pair = [(one, PARALLEL_ENVIRONMENTS[:1]), (four, PARALLEL_ENVIRONMENTS)]
        if round_number % 2:
            pair.reverse()
        for times, environments in pair:
            times.append(deploy(environments))
    one_median, four_median = statistics.median(one), statistics.median(four)
    return {
        "delay_s": delay,
        "one_s": round(one_median, 3),
        "four_s": round(four_median, 3),
        "ratio": round(four_median / one_median, 3),
        "runs": {"one": [round(t, 3) for t in one], "four": [round(t, 3) for t in four]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--settle", type=float, default=2.5)
    parser.add_argument(
        "--delays",
        default="2,0",
        help="comma-separated create/update delays (s) for the four-environment runs",
    )
    parser.add_argument(
        "--parts",
        default="compare,first-event,snapshot,parallel",
        help="comma-separated: which measurements to run",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="automation-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the service
    # Started in the background by a shell, this process has SIGINT ignored, and so would the
    # CLI it starts: such a CLI waits 5 s for its language host to stop on SIGINT (the
    # service's workers install their own handlers, so their CLIs never inherit this).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bench = Bench(root, args.settle, args.verbose)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "rounds": args.rounds}
    try:
        bench.start()
        print(f"cpus: {os.cpu_count()}; rounds: {args.rounds}; settle: {args.settle}s", flush=True)
        parts = set(args.parts.split(","))
        results["compare"] = compare(bench, args.rounds) if "compare" in parts else {}
        for name, figures in results["compare"].items():
            print(
                f"{name:34} service {figures['service_s']:6.2f}s   cli {figures['cli_s']:6.2f}s"
                f"   ratio {figures['ratio']:.2f}  (goal <= 1.10)",
                flush=True,
            )
        if "first-event" in parts:
            results["first_event"] = first_event(bench, args.rounds)
            median = results["first_event"]["median_s"]
            print(f"{'first SSE event after the POST':34} {median:.2f}s")
        results["snapshot"] = snapshot_cost(bench, args.rounds) if "snapshot" in parts else {}
        for label, figures in results["snapshot"].items():
            print(
                f"snapshot of {label:22} {figures['files']:4} files   capture cold"
                f" {figures['capture_cold_ms']:.1f} ms, warm {figures['capture_warm_ms']:.1f} ms"
                f"   job copy {figures['materialize_ms']:.1f} ms",
                flush=True,
            )
        results["parallel"] = []
        delays = args.delays.split(",") if "parallel" in parts else []
        for delay in (float(text) for text in delays):
            figures = parallel(bench, args.rounds, delay)
            results["parallel"].append(figures)
            print(
                f"4 environments vs 1 (delay {delay:.0f}s)      one {figures['one_s']:6.2f}s"
                f"   four {figures['four_s']:6.2f}s   ratio {figures['ratio']:.2f}"
                "  (goal <= 1.50)",
                flush=True,
            )
    finally:
        bench.stop()
        if args.keep:
            print(f"work dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
