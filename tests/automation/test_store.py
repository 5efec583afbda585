"""The SQLite job store: durable, ordered, paginated."""

import sqlite3
from pathlib import Path

import pytest

from automation.models import JobStatus, Operation
from automation.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "jobs.db")


def test_database_is_in_wal_mode(store: Store) -> None:
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_jobs_survive_reopening(store: Store) -> None:
    job = store.create_job("dev", Operation.UP, message="ship it", config={"image": "a:1"})
    store.append_events(job.id, ['{"a": 1}', '{"b": 2}'])
    store.append_log(job.id, ["Updating (dev):", "done"])
    store.close()

    reopened = Store(store.path)
    again = reopened.require(job.id)
    assert again.status is JobStatus.QUEUED
    assert again.message == "ship it"
    assert again.config == {"image": "a:1"}
    assert reopened.events_after(job.id, 0) == [(1, '{"a": 1}'), (2, '{"b": 2}')]
    assert reopened.events_after(job.id, 1) == [(2, '{"b": 2}')]
    assert reopened.log_text(job.id) == "Updating (dev):\ndone\n"


def test_event_sequence_continues_across_batches(store: Store) -> None:
    job = store.create_job("dev", Operation.PREVIEW)
    assert store.append_events(job.id, ["1", "2"]) == 2
    assert store.append_events(job.id, ["3"]) == 3
    other = store.create_job("dev", Operation.PREVIEW)
    assert store.append_events(other.id, ["x"]) == 1


def test_claim_next_is_fifo_per_environment(store: Store) -> None:
    first = store.create_job("dev", Operation.UP)
    prod = store.create_job("prod", Operation.UP)
    second = store.create_job("dev", Operation.PREVIEW)

    claimed = store.claim_next("dev")
    assert claimed is not None and claimed.id == first.id
    assert claimed.status is JobStatus.RUNNING and claimed.started_at is not None
    assert store.count_queued("dev") == 1
    claimed = store.claim_next("dev")
    assert claimed is not None and claimed.id == second.id
    assert store.claim_next("dev") is None
    assert store.require(prod.id).status is JobStatus.QUEUED


def test_cancel_queued_only_touches_queued_jobs(store: Store) -> None:
    job = store.create_job("dev", Operation.UP)
    assert store.cancel_queued(job.id)
    cancelled = store.require(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert not store.cancel_queued(job.id)
    running = store.create_job("dev", Operation.UP)
    store.claim_next("dev")
    assert not store.cancel_queued(running.id)
    assert store.require(running.id).status is JobStatus.RUNNING


def test_pagination_is_newest_first_and_complete(store: Store) -> None:
    ids = [store.create_job("dev" if n % 2 else "prod", Operation.PREVIEW).id for n in range(7)]
    seen: list[str] = []
    before = None
    while True:
        page, before = store.list_jobs(limit=3, before=before)
        seen.extend(job.id for job in page)
        if before is None:
            break
    assert seen == list(reversed(ids))
    dev, more = store.list_jobs(environment="dev", limit=10)
    assert [job.id for job in dev] == [ids[5], ids[3], ids[1]] and more is None


def test_finish_records_results_and_last_outputs(store: Store) -> None:
    up = store.create_job("dev", Operation.UP)
    store.claim_next("dev")
    store.finish(up.id, JobStatus.SUCCEEDED, summary={"create": 3}, outputs={"url": "x"})
    assert store.last_outputs("dev") == {"url": "x"}
    assert store.require(up.id).summary == {"create": 3}

    destroy = store.create_job("dev", Operation.DESTROY)
    store.claim_next("dev")
    store.finish(destroy.id, JobStatus.FAILED, error="boom")
    assert store.last_outputs("dev") == {"url": "x"}, "a failed destroy changes nothing"
    destroy = store.create_job("dev", Operation.DESTROY)
    store.claim_next("dev")
    store.finish(destroy.id, JobStatus.SUCCEEDED, summary={"delete": 3})
    assert store.last_outputs("dev") == {}
    assert store.last_outputs("prod") is None


def test_notes_accumulate(store: Store) -> None:
    job = store.create_job("dev", Operation.UP)
    store.add_note(job.id, "one")
    store.add_note(job.id, "two")
    assert store.require(job.id).notes == ["one", "two"]


def test_finish_refuses_a_non_final_status(store: Store) -> None:
    job = store.create_job("dev", Operation.UP)
    with pytest.raises(ValueError, match="not a final status"):
        store.finish(job.id, JobStatus.RUNNING)
