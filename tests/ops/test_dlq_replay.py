"""DLQ list and replay, one message at a time (receive, reset the job, send, delete), on moto."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from jobpipe.adapters.dynamodb import DynamoDBJobStore
from jobpipe.adapters.sqs import SQSJobQueue
from jobpipe.domain.job import ErrorInfo, Job, JobMessage, new_job_id
from jobpipe.domain.states import JobStatus
from jobpipe.ops.dlq import Action, DeadLetterQueue, ReplayFilter
from tests.conftest import Aws
from tests.factories import fail, pending_job, replay, retry, start, succeed

NOW_MS = int(time.time() * 1000)
BOOM = ErrorInfo("TransientJobError", "boom")


class Fixture:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.store = DynamoDBJobStore(aws.table_name)
        self.queue = SQSJobQueue(aws.queue_url, aws.dlq_url)
        self.sleeps: list[float] = []
        self.dlq = DeadLetterQueue.on_sqs(
            aws.sqs,
            self.store,
            dlq_url=aws.dlq_url,
            queue_url=aws.queue_url,
            sleep=self.sleeps.append,
            wait_seconds=0,
        )

    def job(self, status: JobStatus, job_type: str = "echo", max_attempts: int = 2) -> Job:
        """A job brought to `status` through the store's own transitions."""
        params = {"n": new_job_id()}
        job = pending_job(job_type, params, max_attempts=max_attempts, now_ms=NOW_MS)
        self.store.create(job)
        if status is JobStatus.PENDING:
            return job
        # A live lease is measured from now, not from when this module was imported: a long
        # suite may reach this test minutes later.
        live = int(time.time() * 1000) + 600_000
        lease = live if status is JobStatus.RUNNING else NOW_MS - 1
        running = start(
            self.store,
            job.job_id,
            payload_hash=job.payload_hash,
            lease_expires_at=lease,
            now_ms=NOW_MS,
        )
        if status is JobStatus.SUCCEEDED:
            return succeed(self.store, running, result={"ok": 1}, now_ms=NOW_MS)
        if status is JobStatus.FAILED:
            return fail(self.store, running, error=BOOM, dead_lettered=True, now_ms=NOW_MS)
        if status is JobStatus.RETRYING:
            return retry(self.store, running, error=BOOM, next_attempt_at=NOW_MS, now_ms=NOW_MS)
        stored = self.store.get(job.job_id)
        assert stored is not None
        return stored

    def dead_letter(
        self, job: Job, error_type: str = "TransientJobError", replays: int | None = None
    ) -> None:
        """The message the worker sends to the DLQ when attempts run out."""
        attributes = {
            "job_id": job.job_id,
            "job_type": job.type,
            "error_type": error_type,
            "error_message": "boom",
            "source_message_id": "m-1",
            "attempts": str(job.attempts),
        }
        if replays is not None:
            attributes["replays"] = str(replays)
        self.queue.send_to_dlq(job.message().to_body(), attributes)

    def jobs_queue_bodies(self) -> list[dict[str, Any]]:
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.aws.queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def crashed(self) -> Job:
        """A running job whose lease has ended: its worker died (and SQS moved its message)."""
        job = pending_job("echo", {"n": new_job_id()}, max_attempts=2, now_ms=NOW_MS)
        self.store.create(job)
        return start(
            self.store,
            job.job_id,
            payload_hash=job.payload_hash,
            lease_expires_at=NOW_MS - 1,
            now_ms=NOW_MS,
        )

    def stored(self, job: Job) -> Job:
        stored = self.store.get(job.job_id)
        assert stored is not None
        return stored


@pytest.fixture
def fx(aws: Aws) -> Fixture:
    return Fixture(aws)


def test_list_shows_id_type_error_attempts_and_age_and_leaves_the_messages(fx: Fixture) -> None:
    job = fx.job(JobStatus.FAILED, "resize")
    fx.dead_letter(job)
    [letter] = fx.dlq.list_messages()
    assert (letter.job_id, letter.job_type, letter.error_type, letter.error_message) == (
        job.job_id,
        "resize",
        "TransientJobError",
        "boom",
    )
    assert letter.attempts == 1 and 0 <= letter.age_seconds(time.time()) < 60
    # Listing does not consume: the message is visible again at once
    assert len(fx.dlq.list_messages()) == 1


def test_a_message_sqs_moved_itself_is_listed_from_its_body(fx: Fixture) -> None:
    job = fx.job(JobStatus.RUNNING)
    fx.aws.sqs.send_message(QueueUrl=fx.aws.dlq_url, MessageBody=job.message().to_body())
    [letter] = fx.dlq.list_messages()
    assert (letter.job_id, letter.job_type, letter.error_type) == (
        job.job_id,
        "echo",
        "MaxReceiveCountExceeded",
    )


def test_replay_resets_a_failed_job_sends_it_and_then_deletes_it(fx: Fixture) -> None:
    # Given a dead-lettered job and its message in the DLQ
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job)
    # When the DLQ is replayed
    report = fx.dlq.replay()
    # Then the job is pending with fresh attempts, the earlier ones on record
    assert [o.action for o in report.outcomes] == [Action.REPLAYED]
    replayed = fx.stored(job)
    assert replayed.status is JobStatus.PENDING and replayed.attempts == 0
    assert replayed.prior_attempts == 1 and replayed.replays == 1
    assert not replayed.dead_lettered and replayed.error is None
    # And its message is on the jobs queue, and gone from the DLQ
    assert fx.jobs_queue_bodies() == [job.message().as_payload()]
    assert fx.aws.queue_depth(fx.aws.dlq_url) == 0


def test_replaying_twice_does_nothing_the_second_time(fx: Fixture) -> None:
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job)
    fx.dlq.replay()
    assert fx.dlq.replay().outcomes == []
    assert fx.stored(job).replays == 1
    assert fx.aws.queue_depth() == 1


def test_a_replay_interrupted_after_the_reset_is_finished_by_the_next_run(fx: Fixture) -> None:
    # Given a job reset to pending whose message is still in the DLQ (the run stopped there)
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job)
    replay(fx.store, job.job_id, now_ms=NOW_MS)
    # When the replay runs again
    report = fx.dlq.replay()
    # Then it sends the job without resetting it twice
    assert [o.action for o in report.outcomes] == [Action.REQUEUED]
    assert fx.stored(job).replays == 1
    assert fx.aws.queue_depth() == 1 and fx.aws.queue_depth(fx.aws.dlq_url) == 0


def test_a_job_that_already_succeeded_is_only_deleted(fx: Fixture) -> None:
    job = fx.job(JobStatus.SUCCEEDED)
    fx.dead_letter(job)
    report = fx.dlq.replay()
    assert [o.action for o in report.outcomes] == [Action.ALREADY_SUCCEEDED]
    assert fx.stored(job).status is JobStatus.SUCCEEDED and fx.stored(job).replays == 0
    assert fx.aws.queue_depth() == 0 and fx.aws.queue_depth(fx.aws.dlq_url) == 0


def test_a_running_job_with_a_live_lease_is_left_in_the_dlq(fx: Fixture) -> None:
    job = fx.job(JobStatus.RUNNING)
    fx.dead_letter(job)
    assert [o.action for o in fx.dlq.replay().outcomes] == [Action.BUSY]
    assert fx.aws.queue_depth() == 0 and len(fx.dlq.list_messages()) == 1


def test_a_running_job_whose_runner_died_is_replayed_with_fresh_attempts(fx: Fixture) -> None:
    job = fx.job(JobStatus.RUNNING)
    fx.aws.sqs.send_message(QueueUrl=fx.aws.dlq_url, MessageBody=job.message().to_body())
    # The lease has expired
    fx.dlq = DeadLetterQueue.on_sqs(
        fx.aws.sqs,
        fx.store,
        dlq_url=fx.aws.dlq_url,
        queue_url=fx.aws.queue_url,
        clock=lambda: time.time() + 3600,
        wait_seconds=0,
    )
    assert [o.action for o in fx.dlq.replay().outcomes] == [Action.REPLAYED]
    replayed = fx.stored(job)
    assert replayed.status is JobStatus.PENDING and replayed.prior_attempts == 1


def test_a_replay_never_fails_an_attempt_a_worker_started_after_it_looked(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job whose runner died (lease expired), its message moved to the DLQ by SQS
    job = fx.job(JobStatus.RUNNING)
    fx.aws.sqs.send_message(QueueUrl=fx.aws.dlq_url, MessageBody=job.message().to_body())
    fx.dlq = DeadLetterQueue.on_sqs(
        fx.aws.sqs,
        fx.store,
        dlq_url=fx.aws.dlq_url,
        queue_url=fx.aws.queue_url,
        clock=lambda: time.time() + 3600,
        wait_seconds=0,
    )
    # And a worker that starts it again (a new lease) right after the replay read it
    read = fx.store.get
    restarted: list[Job] = []

    def read_then_restart(job_id: str) -> Job | None:
        seen = read(job_id)
        if not restarted:
            restarted.append(
                start(
                    fx.store,
                    job_id,
                    payload_hash=job.payload_hash,
                    lease_expires_at=int(time.time() * 1000) + 7_200_000,
                    now_ms=int(time.time() * 1000) + 3_600_000,
                )
            )
        return seen

    monkeypatch.setattr(fx.store, "get", read_then_restart)
    # When the DLQ is replayed
    outcomes = fx.dlq.replay().outcomes
    # Then the worker's attempt goes on: the job is still running it, not failed and reset
    stored = read(job.job_id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (JobStatus.RUNNING, 2)
    assert stored.lease_expires_at == restarted[0].lease_expires_at
    assert [o.action for o in outcomes] == [Action.BUSY]


def test_a_copy_from_before_the_jobs_latest_replay_is_deleted_without_resetting_it(
    fx: Fixture,
) -> None:
    # Given a job dead-lettered, replayed, and dead-lettered again, with a stale copy from its
    # first dead-lettering still in the DLQ beside the current one
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job, replays=0)
    replay(fx.store, job.job_id, now_ms=NOW_MS + 1)
    fx.aws.sqs.purge_queue(QueueUrl=fx.aws.queue_url)
    running = start(
        fx.store,
        job.job_id,
        payload_hash=job.payload_hash,
        lease_expires_at=NOW_MS + 5,
        now_ms=NOW_MS + 2,
    )
    fail(fx.store, running, error=BOOM, dead_lettered=True, now_ms=NOW_MS + 3)
    fx.dead_letter(job, replays=1)
    # When the DLQ is replayed
    outcomes = fx.dlq.replay().outcomes
    # Then the stale copy is only deleted, the current one replays the job once, and the DLQ
    # is empty
    assert sorted(o.action for o in outcomes) == sorted([Action.STALE, Action.REPLAYED])
    assert fx.stored(job).replays == 2
    assert fx.dlq.list_messages() == []


def test_a_message_with_no_job_is_left_in_the_dlq(fx: Fixture) -> None:
    fx.aws.sqs.send_message(QueueUrl=fx.aws.dlq_url, MessageBody="not json")
    fx.aws.sqs.send_message(
        QueueUrl=fx.aws.dlq_url,
        MessageBody=JobMessage(new_job_id(), "echo", {}).to_body(),
    )
    report = fx.dlq.replay()
    assert [o.action for o in report.outcomes] == [Action.UNREPLAYABLE] * 2
    assert fx.aws.queue_depth() == 0 and len(fx.dlq.list_messages()) == 2


def test_a_dry_run_changes_nothing(fx: Fixture) -> None:
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job)
    report = fx.dlq.replay(dry_run=True)
    assert report.dry_run and [o.action for o in report.outcomes] == [Action.REPLAYED]
    assert fx.stored(job).status is JobStatus.FAILED
    assert fx.aws.queue_depth() == 0 and len(fx.dlq.list_messages()) == 1


RESET = "pending with fresh attempts (0 of 2); replays=1, prior attempts=1"


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        pytest.param(
            JobStatus.FAILED, f"would reset failed \N{RIGHTWARDS ARROW} {RESET}", id="failed"
        ),
        pytest.param(
            JobStatus.RUNNING, f"would reset running \N{RIGHTWARDS ARROW} {RESET}", id="crashed"
        ),
        pytest.param(
            JobStatus.RETRYING,
            "would send its message back as is: the job stays retrying",
            id="retrying",
        ),
        pytest.param(
            JobStatus.SUCCEEDED,
            "would delete the message: the job already succeeded",
            id="succeeded",
        ),
    ],
)
def test_a_dry_run_describes_what_the_replay_would_leave_not_todays_state(
    fx: Fixture, status: JobStatus, detail: str
) -> None:
    # Given a dead-lettered job in each state a replay handles (a running one whose lease ended)
    job = fx.crashed() if status is JobStatus.RUNNING else fx.job(status)
    fx.dead_letter(job)
    # When a dry run looks at it
    [outcome] = fx.dlq.replay(dry_run=True).outcomes
    # Then it says what the replay would do and the state the job would have after it
    assert outcome.detail == detail
    assert fx.stored(job).status is status


def test_a_dry_run_promises_the_state_the_replay_then_leaves(fx: Fixture) -> None:
    # Given a failed, dead-lettered job and what a dry run says of it
    job = fx.job(JobStatus.FAILED)
    fx.dead_letter(job)
    [planned] = fx.dlq.replay(dry_run=True).outcomes
    # When it is replayed
    fx.dlq.replay()
    # Then the job is what the dry run said it would be
    after = fx.stored(job)
    assert planned.detail.endswith(
        f"{after.status.value} with fresh attempts (0 of {after.max_attempts}); "
        f"replays={after.replays}, prior attempts={after.prior_attempts}"
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (ReplayFilter(job_types=frozenset({"resize"})), {"resize"}),
        (ReplayFilter(error_types=frozenset({"TimeoutError"})), {"echo"}),
        (ReplayFilter(min_age_seconds=3600), set()),
        (ReplayFilter(max_age_seconds=3600), {"resize", "echo"}),
    ],
)
def test_filters_choose_what_is_replayed(
    fx: Fixture, where: ReplayFilter, expected: set[str]
) -> None:
    fx.dead_letter(fx.job(JobStatus.FAILED, "resize"), error_type="ValueError")
    fx.dead_letter(fx.job(JobStatus.FAILED, "echo"), error_type="TimeoutError")
    report = fx.dlq.replay(where)
    assert {o.job_type for o in report.outcomes} == expected
    # What was not chosen is still in the DLQ, visible
    assert len(fx.dlq.list_messages()) == 2 - len(expected)


def test_a_job_id_filter_and_a_limit(fx: Fixture) -> None:
    jobs = [fx.job(JobStatus.FAILED) for _ in range(4)]
    for job in jobs:
        fx.dead_letter(job)
    by_id = fx.dlq.replay(ReplayFilter(job_ids=frozenset({jobs[2].job_id})))
    assert [o.job_id for o in by_id.outcomes] == [jobs[2].job_id]
    limited = fx.dlq.replay(limit=2)
    assert len(limited.outcomes) == 2
    # The rest are visible again straight away
    assert len(fx.dlq.list_messages()) == 1


def test_the_rate_paces_the_replay(fx: Fixture) -> None:
    for _ in range(3):
        fx.dead_letter(fx.job(JobStatus.FAILED))
    fx.dlq.replay(rate=2)
    # The second and third wait their turn (0.5 s apart from the start)
    assert len(fx.sleeps) == 2 and all(0 < s <= 1.0 for s in fx.sleeps)
