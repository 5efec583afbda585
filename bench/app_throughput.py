"""Requests/s and latency of the app against the seed's Express app, one core each.

    .venv/bin/python bench/app_throughput.py [--rounds 3] [--duration 10] [--warmup 3]

Installs what it lacks: wrk (apt-get) and express (npm, into bench/.work/express). Each
server runs pinned to core 1 and wrk to core 0 (taskset); both servers are warmed up,
then runs interleave (Express, app, Express, app, ...) so that noise from other work on
the machine falls on both alike. Prints req/s, p50, p99 and memory per run, then the
medians and the app's ratios against Express. The app writes its usual JSON line per
request to a file, as it would to the container's log pipe.

A benchmark, not a test: nothing gates on it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK_DIR = REPO_ROOT / "bench" / ".work"
EXPRESS_SOURCE = REPO_ROOT / "bench" / "express"
SERVER_CORE = "1"
LOAD_CORE = "0"
GOAL_THROUGHPUT_RATIO = 3.0  # app req/s >= 3x Express
GOAL_P99_RATIO = 0.5  # app p99 <= half of Express's


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    cwd: Path


@dataclass(frozen=True)
class Run:
    server: str
    round: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    rss_mb: float  # summed over the server's processes (granian: main + worker)
    errors: int  # non-2xx answers and socket errors reported by wrk
    log_lines: int | None  # request lines the app wrote during the run (Express writes none)


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or misbehaved."""


def run_checked(command: list[str], cwd: Path | None = None) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    run_checked(["apt-get", "update", "-qq"])
    run_checked(["apt-get", "install", "-y", "-qq", "wrk"])


def ensure_express() -> Path:
    """bench/express copied to bench/.work/express with express installed there by npm."""
    if not (shutil.which("node") and shutil.which("npm")):
        run_checked(["apt-get", "update", "-qq"])
        run_checked(["apt-get", "install", "-y", "-qq", "nodejs", "npm"])
    target = WORK_DIR / "express"
    target.mkdir(parents=True, exist_ok=True)
    manifest_changed = not (target / "package.json").exists() or (
        (target / "package.json").read_bytes() != (EXPRESS_SOURCE / "package.json").read_bytes()
    )
    for name in ("package.json", "index.mjs"):
        shutil.copyfile(EXPRESS_SOURCE / name, target / name)
    if manifest_changed or not (target / "node_modules" / "express").is_dir():
        run_checked(["npm", "install", "--no-audit", "--no-fund", "--omit=dev"], cwd=target)
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{name} did not answer {url} within 15 s")


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids.extend(process_tree(int(child)))
    return pids


def rss_mb(pid: int) -> float:
    total_kb = 0
    for member in process_tree(pid):
        status = Path(f"/proc/{member}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kb += int(match[1]) if match else 0
    return total_kb / 1024


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms and error count from `wrk --latency` output."""

    def latency(percentile: str) -> float:
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise BenchError(f"no {percentile}% latency in wrk's output:\n{output}")
        return float(match[1]) * _UNIT_MS[match[2]]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise BenchError(f"no Requests/sec in wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx[1]) if non_2xx else 0
    return float(rate[1]), latency("50"), latency("99"), errors


def drive(url: str, seconds: int, connections: int) -> str:
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    result = subprocess.run(
        [*command, "--latency", url], capture_output=True, text=True, check=True
    )
    return result.stdout


def count_lines(path: Path) -> int:
    with path.open("rb") as log:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))


def median(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(run, field)) for run in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up (3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--path", default="/health", help="path to request (/health)")
    options = parser.parse_args()
    if options.rounds < 1 or options.duration <= 0 or options.warmup < 0:
        parser.error("--rounds must be >= 1, --duration > 0 and --warmup >= 0")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise BenchError("needs cores 0 and 1: the server runs on core 1 and wrk on core 0")

    ensure_wrk()
    express_dir = ensure_express()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    servers = [
        Server("express", ["node", "index.mjs"], express_dir),
        Server("app", [sys.executable, "-m", "app"], REPO_ROOT),
    ]

    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    logs: dict[str, Path] = {}
    runs: list[Run] = []
    try:
        for server in servers:
            port = free_port()
            logs[server.name] = WORK_DIR / f"{server.name}-stdout.log"
            # Append mode, so that truncating the file between runs leaves no hole.
            with logs[server.name].open("ab") as log_file:
                processes[server.name] = subprocess.Popen(
                    ["taskset", "-c", SERVER_CORE, *server.command],
                    cwd=server.cwd,
                    env=os.environ | {"PORT": str(port)},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            urls[server.name] = f"http://127.0.0.1:{port}{options.path}"
            wait_until_healthy(urls[server.name], processes[server.name], server.name)
            if options.warmup:
                drive(urls[server.name], options.warmup, options.connections)

        print(f"{'run':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>8}{'errors':>8}")
        for round_number in range(1, options.rounds + 1):
            for server in servers:
                log_path = logs[server.name]
                os.truncate(log_path, 0)  # the server appends: lines written from now on
                output = drive(urls[server.name], options.duration, options.connections)
                rate, p50, p99, errors = parse_wrk(output)
                run = Run(
                    server=server.name,
                    round=round_number,
                    requests_per_second=rate,
                    p50_ms=p50,
                    p99_ms=p99,
                    rss_mb=rss_mb(processes[server.name].pid),
                    errors=errors,
                    log_lines=count_lines(log_path) if server.name == "app" else None,
                )
                runs.append(run)
                print(
                    f"{server.name + ' #' + str(round_number):<12}{rate:>10.0f}{p50:>9.2f}"
                    f"{p99:>9.2f}{run.rss_mb:>8.1f}{errors:>8}",
                    flush=True,
                )
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log_path in logs.values():
            log_path.unlink(missing_ok=True)  # the app's log is ~1 GB per minute of load

    by_server = {s.name: [run for run in runs if run.server == s.name] for s in servers}
    print("\nmedians")
    for name, server_runs in by_server.items():
        print(
            f"{name:<12}{median(server_runs, 'requests_per_second'):>10.0f}"
            f"{median(server_runs, 'p50_ms'):>9.2f}{median(server_runs, 'p99_ms'):>9.2f}"
            f"{median(server_runs, 'rss_mb'):>8.1f}"
        )
    throughput_ratio = median(by_server["app"], "requests_per_second") / median(
        by_server["express"], "requests_per_second"
    )
    p99_ratio = median(by_server["app"], "p99_ms") / median(by_server["express"], "p99_ms")
    met = throughput_ratio >= GOAL_THROUGHPUT_RATIO and p99_ratio <= GOAL_P99_RATIO
    print(
        f"\napp vs express: {throughput_ratio:.2f}x req/s (goal >= {GOAL_THROUGHPUT_RATIO}x), "
        f"p99 {p99_ratio:.2f}x (goal <= {GOAL_P99_RATIO}x): {'met' if met else 'MISSED'}"
    )
    logged = [run for run in by_server["app"] if run.log_lines is not None]
    print(
        "app request log lines per run: "
        + ", ".join(
            f"{run.log_lines} (~{run.requests_per_second * options.duration:.0f} requests)"
            for run in logged
        )
    )
    errors = sum(run.errors for run in runs)
    if errors:
        print(f"WARNING: wrk reported {errors} errors; the figures above are suspect")
    result_file = WORK_DIR / "app_throughput.json"
    result_file.write_text(
        json.dumps(
            {
                "options": vars(options),
                "runs": [asdict(run) for run in runs],
                "throughput_ratio": throughput_ratio,
                "p99_ratio": p99_ratio,
            },
            indent=2,
        )
    )
    print(f"results: {result_file.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, subprocess.CalledProcessError) as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
