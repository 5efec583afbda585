"""Benchmark: the infra suite's wall time against its budget (15 s on 2 cores, issue #10).

    .venv/bin/python bench/infra_suite.py [--rounds 5] [--baseline REV]

Each round runs, as fresh processes, `pytest tests/infra` (what a developer waits for) and
`pytest --collect-only tests/infra` (interpreter, plugins, the conftest's preloads of pulumi_aws
and botocore's models, test modules: the part no test can shorten). With `--baseline`, each
round also runs the suite of that revision (checked out in a temporary git worktree, same
virtualenv), alternating which goes first. Then it times single evaluations of three stack
shapes in this process (the unit every stack test pays for, its garbage collection included).
Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 15.0
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/infra"]


def timed(command: list[str], cwd: Path = ROOT) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"{' '.join(command[2:])} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    return wall, run.stdout.strip().splitlines()[-1]


def evaluation_medians(repeats: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    import tests.infra.conftest  # noqa: F401 - the suite's preloads and GC settings
    from infra.mock_cloud import evaluate
    from tests.infra.stack_template import stack_config_text
    from tests.infra.test_aws_api import SHAPES

    shapes = {label: SHAPES[shape] for label, shape in
              (("prod", "prod"), ("dev", "dev"), ("two services", "two_services"))}  # fmt: skip
    medians = {}
    for label, (stack, overrides) in shapes.items():
        config = stack_config_text(stack, overrides)
        evaluate(stack, config)  # warm
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            evaluate(stack, config)
            times.append(time.perf_counter() - started)
        medians[label] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="a git revision whose suite runs beside this one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        baseline_tree = None
        if args.baseline:
            baseline_tree = Path(scratch) / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--quiet", "--detach", baseline_tree, args.baseline],
                cwd=ROOT,
                check=True,
            )
        try:
            run_rounds(args.rounds, baseline_tree)
        finally:
            if baseline_tree is not None:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", baseline_tree], cwd=ROOT, check=True
                )
    for label, seconds in evaluation_medians(repeats=15).items():
        print(f"  one evaluation, {label}: {seconds * 1000:.0f} ms (median of 15)")


def run_rounds(rounds: int, baseline_tree: Path | None) -> None:
    suite, collect, pytest_reported, baseline = [], [], [], []
    for round_number in range(1, rounds + 1):
        if baseline_tree is not None and round_number % 2:
            baseline.append(timed(PYTEST, baseline_tree)[0])
        wall, summary = timed(PYTEST)
        collect_wall, _ = timed([*PYTEST[:3], "--collect-only", *PYTEST[3:]])
        reported = re.search(r"in ([0-9.]+)s", summary)
        suite.append(wall)
        collect.append(collect_wall)
        pytest_reported.append(float(reported.group(1)) if reported else float("nan"))
        if baseline_tree is not None and not round_number % 2:
            baseline.append(timed(PYTEST, baseline_tree)[0])
        print(f"round {round_number}: suite {wall:5.2f} s wall ({summary}); "
              f"start + collection {collect_wall:4.2f} s"
              + (f"; baseline suite {baseline[-1]:5.2f} s" if baseline else ""))  # fmt: skip

    suite_median = statistics.median(suite)
    print(f"\ninfra suite, median of {rounds}: {suite_median:.2f} s wall "
          f"(min {min(suite):.2f}, max {max(suite):.2f}); budget {BUDGET_S:.0f} s: "
          f"{suite_median / BUDGET_S:.2f}x of it")  # fmt: skip
    print(f"  start + collection {statistics.median(collect):.2f} s, "
          f"pytest's own count {statistics.median(pytest_reported):.2f} s")  # fmt: skip
    if baseline:
        baseline_median = statistics.median(baseline)
        print(f"  baseline suite {baseline_median:.2f} s wall: this one takes "
              f"{suite_median / baseline_median:.2f}x its time")  # fmt: skip


if __name__ == "__main__":
    main()
