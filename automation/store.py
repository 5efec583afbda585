"""Durable job history in SQLite: jobs, their engine events and their plain-text log.

WAL mode with `synchronous=FULL`: a write is on disk when its call returns, so a job, event or
log line is stored before anyone is told about it and survives a SIGKILL or power loss of the
service. One connection guarded by a lock; every call is a short transaction.

`auto_vacuum=INCREMENTAL` (set on a new database before its tables, or once with a VACUUM on an
older one): pages freed by `prune` are given back to the file system by `incremental_vacuum`, so
the file stops growing when the number of jobs kept is steady.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automation.models import (
    AuditEntry,
    ConfigChange,
    Job,
    JobStatus,
    Operation,
    ResourceChange,
    Source,
    Verification,
    WebhookDelivery,
)

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
CREATE TABLE IF NOT EXISTS idempotency (
    caller TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (caller, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT,
    client TEXT,
    environment TEXT,
    operation TEXT NOT NULL,
    job_id TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_environment ON audit (environment, id);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery TEXT NOT NULL,
    event TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    job_id TEXT,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,
    ok INTEGER NOT NULL,
    error TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_environment ON jobs (environment, status, position);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, position);
"""


def _append_table(table: str, column: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (job_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        f" {column} TEXT NOT NULL, PRIMARY KEY (job_id, seq));"
    )


APPEND_TABLES = {"events": "data", "logs": "line"}
"""Events and log lines are rowid tables: rows are appended in order, so pages fill up (as
WITHOUT ROWID tables, keyed by a random job id with large rows in overflow pages, 58% of their
pages were empty space; older databases are converted when opened)."""
SCHEMA += "\n".join(_append_table(table, column) for table, column in APPEND_TABLES.items())


ADDED_JOB_COLUMNS = {
    "source_tree": "TEXT",
    "source_commit": "TEXT",
    "source_dirty": "INTEGER",
    "rollback_of": "TEXT",
    "config_changes": "TEXT NOT NULL DEFAULT '[]'",
    "worker_token": "TEXT",
    "changes": "TEXT",
    "run_config": "TEXT",
    "applies": "TEXT",
    "applied_by": "TEXT",
    "approved_by": "TEXT",
    "plan_expires_at": "TEXT",
    "verification": "TEXT",
    "rolled_back_by": "TEXT",
    "rolls_back": "TEXT",
    "priority": "INTEGER NOT NULL DEFAULT 0",
}
"""Columns newer than the first schema: added to an existing database when it is opened."""


PRUNE_BATCH = 200
"""Jobs deleted per transaction: the lock is never held long while the service serves."""
WAL_SIZE_LIMIT = 4 * 1024 * 1024
"""After a checkpoint the WAL file is truncated to this (by default it keeps its largest size)."""
AUTO_VACUUM_INCREMENTAL = 2
FINISHED_STATUSES = tuple(status.value for status in JobStatus if status.finished)


@dataclass(frozen=True)
class Pruned:
    jobs: int
    events: int
    logs: int


class StoreError(RuntimeError):
    """The job database cannot be used; the message says why."""


@dataclass(frozen=True)
class IdempotencyKey:
    caller: str
    key: str
    request_hash: str


def now() -> datetime:
    return datetime.now(UTC)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


class Store:
    def __init__(self, path: Path, clock: Callable[[], datetime] = now) -> None:
        """`clock` gives every time the store records (a test's own clock)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._now = clock
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA auto_vacuum={AUTO_VACUUM_INCREMENTAL}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._db.executescript(SCHEMA)
            self._migrate()
            self._enable_incremental_vacuum()
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the job database {path}: {error}") from error
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in ADDED_JOB_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        for table, column in APPEND_TABLES.items():
            (sql,) = self._db.execute(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if "WITHOUT ROWID" in sql.upper():
                self._db.executescript(
                    f"BEGIN IMMEDIATE; ALTER TABLE {table} RENAME TO old_{table};"
                    f" {_append_table(table, column)}"
                    f" INSERT INTO {table} (job_id, seq, {column})"
                    f" SELECT job_id, seq, {column} FROM old_{table} ORDER BY job_id, seq;"
                    f" DROP TABLE old_{table}; COMMIT;"
                )

    def _enable_incremental_vacuum(self) -> None:
        """A database made before auto_vacuum was set: a one-time VACUUM switches it."""
        mode = self._db.execute("PRAGMA auto_vacuum").fetchone()[0]
        if mode != AUTO_VACUUM_INCREMENTAL:
            self._db.execute(f"PRAGMA auto_vacuum={AUTO_VACUUM_INCREMENTAL}")
            self._db.execute("VACUUM")

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
        config: dict[str, str | None] | None = None,
        image: str | None = None,
        requested_by: str | None = None,
        source: Source | None = None,
        rollback_of: str | None = None,
        applies: str | None = None,
        approved_by: str | None = None,
        rolls_back: str | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Job:
        """A new queued job; with `idempotency`, its key is recorded in the same transaction.
        An apply (`applies`) marks its preview `applied_by` in that transaction too."""
        job_id = uuid.uuid4().hex
        created = _time(self._now())
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, environment, operation, status, message, config, image,"
                " requested_by, created_at, source_tree, source_commit, source_dirty,"
                " rollback_of, applies, approved_by, rolls_back, priority)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    environment,
                    operation.value,
                    JobStatus.QUEUED.value,
                    message,
                    json.dumps(config or {}, sort_keys=True),
                    image,
                    requested_by,
                    created,
                    source.tree if source else None,
                    source.commit if source else None,
                    None if source is None or source.dirty is None else int(source.dirty),
                    rollback_of,
                    applies,
                    approved_by,
                    rolls_back,
                    _priority(operation, rolls_back),
                ),
            )
            if rolls_back is not None:
                db.execute("UPDATE jobs SET rolled_back_by = ? WHERE id = ?", (job_id, rolls_back))
            if applies is not None:
                db.execute("UPDATE jobs SET applied_by = ? WHERE id = ?", (job_id, applies))
            if idempotency is not None:
                db.execute(
                    "INSERT INTO idempotency (caller, key, request_hash, job_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        idempotency.caller,
                        idempotency.key,
                        idempotency.request_hash,
                        job_id,
                        created,
                    ),
                )
        return self.require(job_id)

    def idempotent_job(self, caller: str, key: str, since: datetime) -> tuple[str, str] | None:
        """(request hash, job id) recorded for `key` by `caller` after `since`, if any."""
        rows = self._query(
            "SELECT request_hash, job_id, created_at FROM idempotency WHERE caller = ? AND key = ?",
            (caller, key),
        )
        if not rows or datetime.fromisoformat(rows[0]["created_at"]) < since:
            return None
        return str(rows[0]["request_hash"]), str(rows[0]["job_id"])

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
        where, params = _where(
            ("environment = ?", environment),
            ("status = ?", status.value if status else None),
            ("position < ?", before),
        )
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
                "SELECT id FROM jobs WHERE status = ? AND environment = ?"
                " ORDER BY priority DESC, position LIMIT 1",
                (JobStatus.QUEUED.value, environment),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_at = ? WHERE id = ?",
                (JobStatus.RUNNING.value, _time(self._now()), row["id"]),
            )
        return self.require(row["id"])

    def set_worker(self, job_id: str, pid: int, token: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET worker_pid = ?, worker_token = ? WHERE id = ?",
                (pid, token, job_id),
            )

    def worker_token(self, job_id: str) -> str | None:
        rows = self._query("SELECT worker_token FROM jobs WHERE id = ?", (job_id,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def set_verifying(
        self,
        job_id: str,
        *,
        summary: dict[str, int] | None,
        outputs: dict[str, Any] | None,
        results: JobResults,
    ) -> None:
        """The up succeeded; its deployment is probed next (the job is not finished)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, summary = ?, outputs = ? WHERE id = ?",
                (JobStatus.VERIFYING.value, _json(summary), _json(outputs), job_id),
            )
            _record_results(db, job_id, results)

    def set_verification(self, job_id: str, verification: Verification) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET verification = ? WHERE id = ?",
                (verification.model_dump_json(), job_id),
            )

    def queued_job(self, environment: str, operation: Operation) -> Job | None:
        """The oldest queued job of that operation in `environment`."""
        rows = self._query(
            "SELECT * FROM jobs WHERE environment = ? AND operation = ? AND status = ?"
            " ORDER BY position LIMIT 1",
            (environment, operation.value, JobStatus.QUEUED.value),
        )
        return _job(rows[0]) if rows else None

    def last_finished(self, environment: str, operation: Operation) -> Job | None:
        rows = self._query(
            f"SELECT * FROM jobs WHERE environment = ? AND operation = ?"
            f" AND status IN ({_marks(FINISHED_STATUSES)}) ORDER BY position DESC LIMIT 1",
            (environment, operation.value, *FINISHED_STATUSES),
        )
        return _job(rows[0]) if rows else None

    def set_run_config(self, job_id: str, config: dict[str, str | None]) -> None:
        """The config overlay the job's copy of the project ran with (its own and inherited)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET run_config = ? WHERE id = ?",
                (json.dumps(config, sort_keys=True), job_id),
            )

    def run_config(self, job_id: str) -> dict[str, str | None] | None:
        rows = self._query("SELECT run_config FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0][0] is None:
            return None
        config: dict[str, str | None] = json.loads(rows[0][0])
        return config

    def stack_changers_since(self, environment: str, since: datetime) -> list[Job]:
        """Ups, refreshes and destroys of `environment` that started after `since` or are
        still queued or running: each may change the stack (oldest first)."""
        rows = self._query(
            "SELECT * FROM jobs WHERE environment = ? AND operation IN (?, ?, ?)"
            " AND (status IN (?, ?, ?) OR started_at > ?) ORDER BY position",
            (
                environment,
                Operation.UP.value,
                Operation.REFRESH.value,
                Operation.DESTROY.value,
                JobStatus.QUEUED.value,
                JobStatus.RUNNING.value,
                JobStatus.VERIFYING.value,
                _time(since),
            ),
        )
        return [_job(row) for row in rows]

    def successful_ups(self, environment: str, limit: int | None = None) -> list[Job]:
        """Newest first."""
        rows = self._query(
            "SELECT * FROM jobs WHERE environment = ? AND operation = ? AND status = ?"
            " ORDER BY position DESC LIMIT ?",
            (environment, Operation.UP.value, JobStatus.SUCCEEDED.value, limit or -1),
        )
        return [_job(row) for row in rows]

    def ups_finished_since(self, environment: str, since: datetime) -> list[Job]:
        """Successful ups of `environment` that finished after `since`, in the order they ran."""
        rows = self._query(
            "SELECT * FROM jobs WHERE environment = ? AND operation = ? AND status = ?"
            " AND finished_at > ? ORDER BY position",
            (environment, Operation.UP.value, JobStatus.SUCCEEDED.value, _time(since)),
        )
        return [_job(row) for row in rows]

    def unfinished_trees(self) -> set[str]:
        """Source trees of queued and running jobs."""
        rows = self._query(
            "SELECT DISTINCT source_tree FROM jobs WHERE status IN (?, ?, ?)"
            " AND source_tree IS NOT NULL",
            (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.VERIFYING.value),
        )
        return {str(row[0]) for row in rows}

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
                (JobStatus.CANCELLED.value, _time(self._now()), job_id, JobStatus.QUEUED.value),
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
        results: JobResults | None = None,
    ) -> Job:
        """The job's final status, with what else its end recorded, in one transaction (each
        is a disk sync: the job's end is what a deploy waits for)."""
        if not status.finished:
            raise ValueError(f"{status} is not a final status")
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, summary = coalesce(?, summary),"
                " outputs = coalesce(?, outputs), error = ? WHERE id = ?",
                (status.value, _time(self._now()), _json(summary), _json(outputs), error, job_id),
            )
            if results is not None:
                _record_results(db, job_id, results)
        return self.require(job_id)

    def add_note(self, job_id: str, note: str) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT notes FROM jobs WHERE id = ?", (job_id,)).fetchone()
            notes = [*json.loads(row["notes"]), note]
            db.execute("UPDATE jobs SET notes = ? WHERE id = ?", (json.dumps(notes), job_id))

    # Retention

    def prune(self, before: datetime, keep_ups: int) -> Pruned:
        """Delete finished jobs that finished before `before`, with their events, log lines and
        idempotency keys; never a queued or running job, nor the newest `keep_ups` (at least
        one) successful ups of each environment. In batches: other calls get in between."""
        keep = max(1, keep_ups)
        cutoff = _time(before)
        total = Pruned(0, 0, 0)
        while True:
            with self._transaction() as db:
                ids = [
                    row[0]
                    for row in db.execute(
                        f"SELECT id FROM jobs WHERE status IN ({_marks(FINISHED_STATUSES)})"
                        " AND coalesce(finished_at, created_at) < ?"
                        " AND id NOT IN (SELECT id FROM (SELECT id, row_number() OVER"
                        " (PARTITION BY environment ORDER BY position DESC) AS newest"
                        " FROM jobs WHERE operation = ? AND status = ?) WHERE newest <= ?)"
                        " ORDER BY position LIMIT ?",
                        (
                            *FINISHED_STATUSES,
                            cutoff,
                            Operation.UP.value,
                            JobStatus.SUCCEEDED.value,
                            keep,
                            PRUNE_BATCH,
                        ),
                    )
                ]
                if not ids:
                    break
                marks = _marks(ids)
                events = db.execute(f"DELETE FROM events WHERE job_id IN ({marks})", ids).rowcount
                logs = db.execute(f"DELETE FROM logs WHERE job_id IN ({marks})", ids).rowcount
                db.execute(f"DELETE FROM idempotency WHERE job_id IN ({marks})", ids)
                jobs = db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids).rowcount
            total = Pruned(total.jobs + jobs, total.events + events, total.logs + logs)
        with self._transaction() as db:
            db.execute("DELETE FROM idempotency WHERE created_at < ?", (cutoff,))
            db.execute("DELETE FROM audit WHERE at < ?", (cutoff,))
            db.execute("DELETE FROM webhook_deliveries WHERE at < ?", (cutoff,))
        return total

    def release_free_pages(self) -> None:
        """Give the pages freed by deletes back to the file system (and the WAL's too)."""
        with self._lock:
            # executescript steps the pragma to the end; execute() would free one page only.
            self._db.executescript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")

    def size(self) -> int:
        """Bytes the database uses (its pages, free ones excluded)."""
        rows = self._query(
            "SELECT (page_count - freelist_count) * page_size FROM"
            " pragma_page_count, pragma_freelist_count, pragma_page_size"
        )
        return int(rows[0][0])

    # Audit

    def audit(
        self,
        *,
        actor: str | None,
        client: str | None,
        environment: str | None,
        operation: str,
        job_id: str | None,
        outcome: str,
        status: int,
        detail: str | None = None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO audit (at, actor, client, environment, operation, job_id, outcome,"
                " status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _time(self._now()),
                    actor,
                    client,
                    environment,
                    operation,
                    job_id,
                    outcome,
                    status,
                    detail,
                ),
            )

    def audit_entries(
        self,
        *,
        environment: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
        limit: int = 200,
    ) -> tuple[list[AuditEntry], int | None]:
        """Oldest first; returns the page and the id to continue after (or None)."""
        where, params = _where(
            ("environment = ?", environment), ("at >= ?", _time(since)), ("id > ?", after)
        )
        rows = self._query(f"SELECT * FROM audit {where} ORDER BY id LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [
            AuditEntry(
                id=row["id"],
                at=datetime.fromisoformat(row["at"]),
                actor=row["actor"],
                client=row["client"],
                environment=row["environment"],
                operation=row["operation"],
                job_id=row["job_id"],
                outcome=row["outcome"],
                status=row["status"],
                detail=row["detail"],
            )
            for row in rows
        ]
        return entries, (rows[-1]["id"] if more else None)

    # Webhook deliveries

    def record_delivery(
        self,
        *,
        delivery: str,
        event: str,
        endpoint: str,
        job_id: str | None,
        attempt: int,
        status: int | None,
        ok: bool,
        error: str | None,
        duration_ms: float,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO webhook_deliveries (delivery, event, endpoint, job_id, attempt, at,"
                " status, ok, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery,
                    event,
                    endpoint,
                    job_id,
                    attempt,
                    _time(self._now()),
                    status,
                    int(ok),
                    error,
                    duration_ms,
                ),
            )

    def deliveries(
        self, *, limit: int = 100, before: int | None = None
    ) -> tuple[list[WebhookDelivery], int | None]:
        """Newest first; returns the page and the id to continue before (or None)."""
        where = "WHERE id < ?" if before is not None else ""
        params: list[Any] = [before] if before is not None else []
        rows = self._query(
            f"SELECT * FROM webhook_deliveries {where} ORDER BY id DESC LIMIT ?",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            WebhookDelivery(
                id=row["id"],
                delivery=row["delivery"],
                event=row["event"],
                endpoint=row["endpoint"],
                job_id=row["job_id"],
                attempt=row["attempt"],
                at=datetime.fromisoformat(row["at"]),
                status=row["status"],
                ok=bool(row["ok"]),
                error=row["error"],
                duration_ms=row["duration_ms"],
            )
            for row in rows
        ]
        return items, (rows[-1]["id"] if more else None)

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


@dataclass(frozen=True)
class JobResults:
    """What a job's end records besides its status (None: left as it is)."""

    changes: list[ResourceChange] | None = None
    config_changes: list[ConfigChange] | None = None
    verification: Verification | None = None
    plan_expires_at: datetime | None = None


def _record_results(db: sqlite3.Connection, job_id: str, results: JobResults) -> None:
    values: dict[str, str | None] = {}
    if results.changes is not None:
        values["changes"] = json.dumps([change.model_dump() for change in results.changes])
    if results.config_changes is not None:
        values["config_changes"] = json.dumps(
            [change.model_dump() for change in results.config_changes]
        )
    if results.verification is not None:
        values["verification"] = results.verification.model_dump_json()
    if results.plan_expires_at is not None:
        values["plan_expires_at"] = _time(results.plan_expires_at)
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*values.values(), job_id])


def _priority(operation: Operation, rolls_back: str | None) -> int:
    """Claim order within an environment: an automatic rollback first, drift checks last (so
    a deploy waits for one drift run at most), otherwise first come, first served."""
    if rolls_back is not None:
        return 1
    return -1 if operation is Operation.DRIFT else 0


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is not None, and their parameters."""
    given = [(clause, value) for clause, value in conditions if value is not None]
    if not given:
        return "", []
    return "WHERE " + " AND ".join(clause for clause, _ in given), [value for _, value in given]


def _marks(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


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
        source=_source(row),
        rollback_of=row["rollback_of"],
        config_changes=json.loads(row["config_changes"] or "[]"),
        changes=json.loads(row["changes"]) if row["changes"] else None,
        applies=row["applies"],
        applied_by=row["applied_by"],
        approved_by=row["approved_by"],
        plan_expires_at=_parse_time(row["plan_expires_at"]),
        verification=(
            Verification.model_validate_json(row["verification"]) if row["verification"] else None
        ),
        rolled_back_by=row["rolled_back_by"],
        rolls_back=row["rolls_back"],
    )


def _source(row: sqlite3.Row) -> Source | None:
    if row["source_tree"] is None:
        return None
    dirty = row["source_dirty"]
    return Source(
        tree=row["source_tree"],
        commit=row["source_commit"],
        dirty=None if dirty is None else bool(dirty),
    )


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
