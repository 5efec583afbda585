"""Retention: old jobs are deleted with their events, log lines and idempotency keys, the kept
deploys and unfinished jobs never; the database file stops growing when the job count is steady."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automation.models import JobStatus, Operation
from automation.retention import Retention, RetentionPolicy
from automation.store import SCHEMA, IdempotencyKey, Store
from tests.automation.conftest import StartService

pytestmark = pytest.mark.timeout(120)

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.time = START

    def __call__(self) -> datetime:
        return self.time

    def advance(self, **delta: float) -> None:
        self.time += timedelta(**delta)


def _operation(
    store: Store,
    environment: str,
    operation: Operation,
    status: JobStatus = JobStatus.SUCCEEDED,
    events: int = 3,
    event_bytes: int = 50,
    key: str | None = None,
) -> str:
    idempotency = IdempotencyKey("ci", key, "hash") if key else None
    job = store.create_job(environment, operation, idempotency=idempotency)
    if status is not JobStatus.QUEUED:
        store.claim_next(environment)
        store.append_events(
            job.id, [json.dumps({"sequence": n, "pad": "e" * event_bytes}) for n in range(events)]
        )
        store.append_log(job.id, [f"line {n}" for n in range(events)])
    if status.finished:
        store.finish(job.id, status)
    return job.id


def _rows(store: Store, table: str, job_id: str) -> int:
    column = "id" if table == "jobs" else "job_id"
    db = sqlite3.connect(store.path)
    try:
        return int(
            db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (job_id,)).fetchone()[0]
        )
    finally:
        db.close()


def test_old_jobs_go_with_their_rows_and_the_kept_ones_stay(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "jobs.db", clock=clock)
    old_ups = [_operation(store, "dev", Operation.UP) for _ in range(4)]
    old_preview = _operation(store, "dev", Operation.PREVIEW, key="k1")
    old_failed_up = _operation(store, "dev", Operation.UP, JobStatus.FAILED)
    prod_only_up = _operation(store, "prod", Operation.UP)
    prod_destroy = _operation(store, "prod", Operation.DESTROY)
    running = _operation(store, "qa", Operation.UP, JobStatus.RUNNING)
    queued = _operation(store, "staging", Operation.PREVIEW, JobStatus.QUEUED)
    clock.advance(days=89)
    recent_preview = _operation(store, "dev", Operation.PREVIEW, key="k2")
    clock.advance(days=2)  # the old ones are 91 days old, the recent one 2

    pruned = Retention(store, RetentionPolicy(days=90, kept_deploys=2), clock=clock).prune_once()

    gone = [old_ups[0], old_ups[1], old_preview, old_failed_up, prod_destroy]
    kept = [old_ups[2], old_ups[3], prod_only_up, running, queued, recent_preview]
    assert {job for job in gone + kept if store.get(job) is None} == set(gone)
    assert (pruned.jobs, pruned.events, pruned.logs) == (5, 15, 15)
    for job in gone:
        assert [_rows(store, table, job) for table in ("events", "logs", "idempotency")] == [
            0,
            0,
            0,
        ]
    assert _rows(store, "events", old_ups[3]) == 3 and store.log_text(old_ups[3])
    assert store.idempotent_job("ci", "k1", since=START) is None
    assert store.idempotent_job("ci", "k2", since=START) is not None
    assert store.require(running).status is JobStatus.RUNNING


def test_the_last_successful_up_stays_even_with_one_kept_deploy(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "jobs.db", clock=clock)
    ups = [_operation(store, "dev", Operation.UP) for _ in range(3)]
    later_failure = _operation(store, "dev", Operation.UP, JobStatus.FAILED)
    clock.advance(days=400)
    Retention(store, RetentionPolicy(days=1, kept_deploys=1), clock=clock).prune_once()
    assert [job for job in [*ups, later_failure] if store.get(job)] == [ups[-1]]


def test_an_older_database_is_converted_and_keeps_its_rows(tmp_path: Path) -> None:
    """A database of the previous schema: no auto_vacuum, events and logs WITHOUT ROWID."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        SCHEMA.split("CREATE TABLE IF NOT EXISTS events")[0]
        + "CREATE TABLE events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
        " PRIMARY KEY (job_id, seq)) WITHOUT ROWID;"
        "CREATE TABLE logs (job_id TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL,"
        " PRIMARY KEY (job_id, seq)) WITHOUT ROWID;"
        "INSERT INTO jobs (id, environment, operation, status, config, created_at)"
        " VALUES ('j1', 'dev', 'up', 'succeeded', '{}', '2020-01-01T00:00:00+00:00');"
        "INSERT INTO events VALUES ('j1', 2, '{\"b\": 2}'), ('j1', 1, '{\"a\": 1}');"
        "INSERT INTO logs VALUES ('j1', 1, 'Updating (dev):');"
    )
    old.commit()
    assert old.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    old.close()

    store = Store(path)
    assert store.events_after("j1", 0) == [(1, '{"a": 1}'), (2, '{"b": 2}')]
    assert store.log_text("j1") == "Updating (dev):\n"
    assert store.append_events("j1", ["{}"]) == 3
    store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    tables = dict(check.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'"))
    assert "WITHOUT ROWID" not in tables["events"] + tables["logs"]
    assert not [name for name in tables if name.startswith("old_")]
    check.close()


def _file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_the_file_stops_growing_when_the_job_count_is_steady(tmp_path: Path) -> None:
    """A day of 40 operations (each 60 events of ~400 bytes and 60 log lines), 30 days, 7 days
    kept: after the first week the job count is steady, and so is the file's size."""
    clock = Clock()
    store = Store(tmp_path / "jobs.db", clock=clock)
    retention = Retention(store, RetentionPolicy(days=7, kept_deploys=2), clock=clock)
    sizes: list[int] = []
    counts: list[int] = []
    for _day in range(30):
        for n in range(40):
            operation = Operation.UP if n % 4 == 0 else Operation.PREVIEW
            _operation(store, "dev" if n % 2 else "prod", operation, events=60, event_bytes=400)
            clock.advance(minutes=30)
        clock.advance(hours=4)
        retention.prune_once()
        sizes.append(_file_bytes(store.path))
        counts.append(len(store.list_jobs(limit=1000)[0]))
    steady = sizes[10:]
    assert len(set(counts[10:])) <= 2, counts
    assert max(steady) <= min(steady) * 1.05, sizes
    assert sizes[-1] < 2 * sizes[6], sizes  # not 30 days' worth: about 8

    everything = Retention(store, RetentionPolicy(days=1, kept_deploys=1), clock=clock)
    clock.advance(days=30)
    everything.prune_once()
    assert _file_bytes(store.path) < sizes[-1] / 10, "freed pages went back to the file system"


def test_the_service_prunes_at_start(start_service: StartService, state_dir: Path) -> None:
    clock = Clock()
    clock.time = datetime.now(UTC) - timedelta(days=100)
    store = Store(state_dir / "automation.db", clock=clock)
    old_preview = _operation(store, "dev", Operation.PREVIEW)
    old_up = _operation(store, "dev", Operation.UP)
    clock.time = datetime.now(UTC) - timedelta(days=10)
    recent = _operation(store, "dev", Operation.PREVIEW)
    store.close()

    service = start_service(retention_days="30")
    deadline = time.monotonic() + 10
    while service.http.get(f"/jobs/{old_preview}").status_code != 404:
        assert time.monotonic() < deadline, "the old preview was not pruned at start"
        time.sleep(0.1)
    assert service.http.get(f"/jobs/{old_up}").json()["status"] == "succeeded"
    assert service.http.get(f"/jobs/{recent}").status_code == 200
    assert "retention: deleted 1 job(s)" in service.log


def test_bytes_per_operation(start_service: StartService, state_dir: Path) -> None:
    """Previews and ups of the fixture through the real service: what they add to the
    database (pages in use, after a first preview and up), and how much of it is debug-severity
    events."""
    service = start_service()
    store = Store(state_dir / "automation.db")
    try:
        for operation in ("preview", "up"):  # the stack exists, each table has its first pages
            service.wait(service.post(f"/environments/dev/{operation}")["id"])
        before = store.size()
        jobs = [
            service.wait(service.post(f"/environments/dev/{operation}")["id"])
            for operation in ("preview", "up") * 2
        ]
        assert {job["status"] for job in jobs} == {"succeeded"}
        added = store.size() - before
        events = [data for job in jobs for _, data in store.events_after(job["id"], 0, 10_000)]
    finally:
        store.close()
    debug = [
        data
        for data in events
        if json.loads(data).get("diagnosticEvent", {}).get("severity") == "debug"
    ]
    debug_share = sum(map(len, debug)) / sum(map(len, events))
    per_operation = added / len(jobs)
    print(
        f"\nbytes per operation: {per_operation:.0f} ({len(events) / len(jobs):.0f} events,"
        f" {sum(map(len, events)) / len(jobs):.0f} bytes of event JSON each;"
        f" {len(debug)}/{len(events)} events debug = {debug_share:.0%} of event bytes)"
    )
    assert 0 < per_operation < 64 * 1024
