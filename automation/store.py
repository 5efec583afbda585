"""Durable job history in SQLite: jobs, their engine events and their plain-text log.

WAL mode with `synchronous=FULL`: a write is on disk when its call returns, so a job, event or
log line is stored before anyone is told about it and survives a SIGKILL or power loss of the
service. One connection guarded by a lock; every call is a short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automation.models import Job, JobStatus, Operation

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    config TEXT NOT NULL,
    image TEXT,
    requested_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    summary TEXT,
    outputs TEXT,
    error TEXT,
    notes TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_by_environment ON jobs (environment, status, position);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, position);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""


class StoreError(RuntimeError):
    """The job database cannot be used; the message says why."""


def now() -> datetime:
    return datetime.now(UTC)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the job database {path}: {error}") from error
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def ping(self) -> None:
        try:
            self._query("SELECT count(*) FROM jobs")
        except sqlite3.Error as error:
            raise StoreError(f"the job database {self.path} is not usable: {error}") from error

    # Jobs

    def create_job(
        self,
        environment: str,
        operation: Operation,
        *,
        message: str | None = None,
        config: dict[str, str] | None = None,
        image: str | None = None,
        requested_by: str | None = None,
    ) -> Job:
        job_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, environment, operation, status, message, config, image,"
                " requested_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    environment,
                    operation.value,
                    JobStatus.QUEUED.value,
                    message,
                    json.dumps(config or {}, sort_keys=True),
                    image,
                    requested_by,
                    _time(now()),
                ),
            )
        return self.require(job_id)

    def get(self, job_id: str) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def list_jobs(
        self,
        *,
        environment: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[Job], int | None]:
        """Newest first; returns the page and the position to continue before (or None)."""
        clauses: list[str] = []
        params: list[Any] = []
        if environment is not None:
            clauses.append("environment = ?")
            params.append(environment)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if before is not None:
            clauses.append("position < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT * FROM jobs {where} ORDER BY position DESC LIMIT ?", [*params, limit + 1]
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_job(row) for row in rows], (rows[-1]["position"] if more else None)

    def jobs_with_status(self, status: JobStatus, environment: str | None = None) -> list[Job]:
        """Oldest first."""
        if environment is None:
            rows = self._query(
                "SELECT * FROM jobs WHERE status = ? ORDER BY position", (status.value,)
            )
        else:
            rows = self._query(
                "SELECT * FROM jobs WHERE status = ? AND environment = ? ORDER BY position",
                (status.value, environment),
            )
        return [_job(row) for row in rows]

    def count_queued(self, environment: str) -> int:
        rows = self._query(
            "SELECT count(*) FROM jobs WHERE status = ? AND environment = ?",
            (JobStatus.QUEUED.value, environment),
        )
        return int(rows[0][0])

    def last_job(self, environment: str) -> Job | None:
        rows = self._query(
            "SELECT * FROM jobs WHERE environment = ? ORDER BY position DESC LIMIT 1",
            (environment,),
        )
        return _job(rows[0]) if rows else None

    def last_outputs(self, environment: str) -> dict[str, Any] | None:
        """Outputs of the newest successful up or destroy (a destroy leaves none)."""
        rows = self._query(
            "SELECT operation, outputs FROM jobs WHERE environment = ? AND status = ?"
            " AND operation IN (?, ?) ORDER BY position DESC LIMIT 1",
            (environment, JobStatus.SUCCEEDED.value, Operation.UP.value, Operation.DESTROY.value),
        )
        if not rows:
            return None
        if rows[0]["operation"] == Operation.DESTROY.value:
            return {}
        outputs: dict[str, Any] = json.loads(rows[0]["outputs"] or "{}")
        return outputs

    def claim_next(self, environment: str) -> Job | None:
        """The oldest queued job of `environment`, now running."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status = ? AND environment = ? ORDER BY position"
                " LIMIT 1",
                (JobStatus.QUEUED.value, environment),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_at = ? WHERE id = ?",
                (JobStatus.RUNNING.value, _time(now()), row["id"]),
            )
        return self.require(row["id"])

    def set_worker(self, job_id: str, pid: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET worker_pid = ? WHERE id = ?", (pid, job_id))

    def worker_pid(self, job_id: str) -> int | None:
        rows = self._query("SELECT worker_pid FROM jobs WHERE id = ?", (job_id,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def request_cancel(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel `job_id` if it is still queued; False when it is not."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, cancel_requested = 1, finished_at = ?"
                " WHERE id = ? AND status = ?",
                (JobStatus.CANCELLED.value, _time(now()), job_id, JobStatus.QUEUED.value),
            ).rowcount
        return changed == 1

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        summary: dict[str, int] | None = None,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        if not status.finished:
            raise ValueError(f"{status} is not a final status")
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, summary = ?, outputs = ?, error = ?"
                " WHERE id = ?",
                (status.value, _time(now()), _json(summary), _json(outputs), error, job_id),
            )
        return self.require(job_id)

    def add_note(self, job_id: str, note: str) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT notes FROM jobs WHERE id = ?", (job_id,)).fetchone()
            notes = [*json.loads(row["notes"]), note]
            db.execute("UPDATE jobs SET notes = ? WHERE id = ?", (json.dumps(notes), job_id))

    # Events and log lines

    def append_events(self, job_id: str, events: list[str]) -> int:
        """Store JSON texts as the job's next events; returns the last sequence number."""
        return self._append("events", "data", job_id, events)

    def append_log(self, job_id: str, lines: list[str]) -> int:
        return self._append("logs", "line", job_id, lines)

    def _append(self, table: str, column: str, job_id: str, items: list[str]) -> int:
        with self._transaction() as db:
            row = db.execute(f"SELECT max(seq) FROM {table} WHERE job_id = ?", (job_id,)).fetchone()
            last = int(row[0] or 0)
            db.executemany(
                f"INSERT INTO {table} (job_id, seq, {column}) VALUES (?, ?, ?)",
                [(job_id, last + offset, item) for offset, item in enumerate(items, start=1)],
            )
        return last + len(items)

    def events_after(self, job_id: str, after: int, limit: int = 500) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT seq, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, limit),
        )
        return [(int(row["seq"]), str(row["data"])) for row in rows]

    def log_text(self, job_id: str) -> str:
        rows = self._query("SELECT line FROM logs WHERE job_id = ? ORDER BY seq", (job_id,))
        return "".join(f"{row['line']}\n" for row in rows)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        environment=row["environment"],
        operation=Operation(row["operation"]),
        status=JobStatus(row["status"]),
        message=row["message"],
        config=json.loads(row["config"]),
        image=row["image"],
        requested_by=row["requested_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        started_at=_parse_time(row["started_at"]),
        finished_at=_parse_time(row["finished_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        summary=json.loads(row["summary"]) if row["summary"] else None,
        outputs=json.loads(row["outputs"]) if row["outputs"] else None,
        error=row["error"],
        notes=json.loads(row["notes"]),
    )


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
