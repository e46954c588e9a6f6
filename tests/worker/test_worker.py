"""The worker's semantics, through the real worker handler, Powertools batch processing and
idempotency, the DynamoDB and SQS adapters on moto, and the event-source harness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobpipe.domain.job import JobMessage, new_job_id
from jobpipe.domain.states import JobStatus
from jobpipe.handlers import worker as worker_handler
from jobpipe.local.event_source import LambdaContext, sqs_event
from tests.factories import start
from tests.worker.conftest import INSTANT, AnyParams, Pipeline


def received(pipeline: Pipeline, count: int = 10) -> list[Any]:
    """Receive what is visible on the jobs queue, as the event source would."""
    response = pipeline.aws.sqs.receive_message(
        QueueUrl=pipeline.aws.queue_url,
        MaxNumberOfMessages=count,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def invoke(pipeline: Pipeline, messages: list[Any]) -> Any:
    """Call the worker handler directly with an SQS event built from `messages`."""
    event = sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:test-jobs", "us-east-1")
    context = LambdaContext("jobpipe-worker", 60, pipeline.clock)
    return worker_handler.handler(event, context)


def send_raw(pipeline: Pipeline, body: str) -> str:
    return str(
        pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.queue_url, MessageBody=body)[
            "MessageId"
        ]
    )


# --- outcomes ---------------------------------------------------------------------------------


def test_a_job_that_succeeds_is_stored_with_its_result_and_leaves_the_queue(
    pipeline: Pipeline,
) -> None:
    # Given a submitted job
    job_id = pipeline.submit("counted", {"n": 1})
    # When the worker runs one batch
    result = pipeline.poll()
    # Then the job succeeded on its first attempt, its message is gone, and it ran once
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"n": 1}
    assert job.attempts == 1
    assert job.error is None
    assert (result.received, result.deleted) == (1, 1)
    assert pipeline.aws.queue_depth() == 0
    assert pipeline.runs(job_id) == 1


def test_a_transient_error_retries_with_backoff_and_then_succeeds(pipeline: Pipeline) -> None:
    # Given a job that fails transiently on its first attempt
    job_id = pipeline.submit("flaky-fast", {"fail_times": 1})
    # When the worker runs a batch
    first = pipeline.poll()
    # Then the job is retrying with its error and next attempt time, and the message stayed
    job = pipeline.job(job_id)
    assert job.status is JobStatus.RETRYING
    assert job.attempts == 1
    assert job.error is not None and job.error.type == "TransientJobError"
    assert job.next_attempt_at is not None
    assert (first.deleted, first.left) == (0, 1)
    # When the backoff passes and the worker runs again
    pipeline.drain()
    # Then the second attempt succeeded
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert job.result == {"attempt": 2}
    assert pipeline.aws.queue_depth() == 0


def test_a_retried_message_is_hidden_for_the_backoff(pipeline: Pipeline) -> None:
    # Given a job type whose backoff is long (the pipeline draws the largest jittered delay)
    from jobpipe.domain.registry import job_type
    from jobpipe.domain.retry import Backoff
    from jobpipe.errors import TransientJobError

    @job_type("slow-retry", backoff=Backoff(base=120, cap=120), into=pipeline.registry)
    def slow_retry(params: AnyParams) -> None:
        raise TransientJobError("try later")

    job_id = pipeline.submit("slow-retry")
    # When its first attempt fails transiently
    pipeline.poll()
    # Then the message is not visible again until the backoff has passed
    assert received(pipeline) == []
    assert pipeline.aws.queue_depth() == 1
    job = pipeline.job(job_id)
    assert job.status is JobStatus.RETRYING
    assert job.next_attempt_at is not None
    assert 119_000 <= job.next_attempt_at - job.updated_at <= 121_000


def test_a_permanent_error_fails_the_job_without_retrying_or_dead_lettering(
    pipeline: Pipeline,
) -> None:
    # Given a job whose handler raises an error its type declares permanent
    job_id = pipeline.submit("broken")
    # When the worker runs it
    result = pipeline.poll()
    # Then it failed after one attempt with the error, the message is deleted, the DLQ is empty
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert (job.error.type, job.error.message) == ("ValueError", "bad input, never retry")
    assert job.dead_lettered is False
    assert result.deleted == 1
    assert pipeline.aws.queue_depth() == 0
    assert pipeline.aws.dlq_messages() == []


def test_a_result_that_is_not_json_fails_the_job_permanently(pipeline: Pipeline) -> None:
    # Given a job whose handler returns something that cannot be stored
    job_id = pipeline.submit("bad-result")
    # When the worker runs it
    pipeline.drain()
    # Then it failed once, with a clear error, and was not retried
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None and job.error.type == "ResultError"


def test_an_outcome_write_that_fails_is_tried_again_while_there_is_time(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe.domain.states import SUCCEED
    from jobpipe.errors import StoreError

    # Given a job, and a store whose first success write fails past botocore's retries
    job_id = pipeline.submit("counted")
    apply = pipeline.store.apply
    failures = [StoreError("DynamoDB UpdateItem failed: ProvisionedThroughputExceededException")]

    def flaky(transition: Any, *args: Any, **kwargs: Any) -> Any:
        if transition is SUCCEED and failures:
            raise failures.pop()
        return apply(transition, *args, **kwargs)

    monkeypatch.setattr(pipeline.store, "apply", flaky)
    # When the worker runs it (with plenty of the invocation left)
    result = pipeline.poll()
    # Then the outcome is recorded by a second try: the job succeeded, ran once, left the queue
    assert failures == []
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED
    assert (pipeline.runs(job_id), result.deleted) == (1, 1)


def test_an_outcome_write_whose_answer_was_lost_counts_as_done(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe.domain.states import SUCCEED
    from jobpipe.errors import StoreError

    # Given a job whose success write is applied, but whose answer never arrives (a read
    # timeout), so that botocore's retry of it is refused
    job_id = pipeline.submit("counted")
    apply = pipeline.store.apply
    lost = [True]

    def applied_then_lost(transition: Any, *args: Any, **kwargs: Any) -> Any:
        done = apply(transition, *args, **kwargs)
        if transition is SUCCEED and lost:
            lost.pop()
            raise StoreError("DynamoDB UpdateItem failed: ReadTimeoutError")
        return done

    monkeypatch.setattr(pipeline.store, "apply", applied_then_lost)
    # When the worker runs it
    result = pipeline.poll()
    # Then the job is done, once, and its record leaves the queue
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED
    assert (pipeline.runs(job_id), result.deleted) == (1, 1)


def test_a_non_ascii_result_is_measured_in_its_utf8_bytes(pipeline: Pipeline) -> None:
    # Given a job returning 50,000 "é": 100,002 bytes stored, under the 100 KiB cap (300,002
    # if the text were stored escaped as \u00e9)
    job_id = pipeline.submit("sized-result", {"chars": 50_000})
    # When the worker runs it
    pipeline.drain()
    # Then it succeeded with its whole result
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result == "é" * 50_000


def test_a_result_over_its_budget_fails_the_job_once_without_running_it_again(
    pipeline: Pipeline,
) -> None:
    # Given a job returning 120,000 bytes of UTF-8, over the 100 KiB result cap
    job_id = pipeline.submit("sized-result", {"chars": 60_000})
    # When the worker has processed everything
    pipeline.drain()
    # Then the job failed permanently with a ResultError after one run, and left the queue
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "ResultError"
    assert "budget" in job.error.message
    assert (job.attempts, pipeline.runs(job_id), job.dead_lettered) == (1, 1, False)
    assert pipeline.aws.queue_depth() == 0


def test_large_params_leave_less_room_for_the_result(pipeline: Pipeline) -> None:
    # Given a job whose params take nearly 256 KiB, and a result of 99,000 bytes (under the cap, but
    # over what the item has left after the params and the reserve for attempt history)
    job_id = pipeline.submit("sized-result", {"chars": 99_000, "char": "r", "pad": "p" * 262_000})
    # When the worker runs it
    pipeline.drain()
    # Then it fails once with a ResultError naming this job's smaller budget
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "ResultError"
    assert pipeline.runs(job_id) == 1


def test_exhausted_attempts_fail_the_job_and_send_it_to_the_dlq_with_the_error(
    pipeline: Pipeline,
) -> None:
    # Given a job that fails transiently more often than it may attempt (max_attempts 3)
    job_id = pipeline.submit("flaky-fast", {"fail_times": 5})
    # When the worker has processed everything
    pipeline.drain()
    # Then the job failed and is marked dead-lettered, after exactly max_attempts attempts
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.dead_lettered is True
    assert job.attempts == 3
    assert pipeline.aws.queue_depth() == 0
    # And the DLQ holds its message, with the error in its attributes
    (dead,) = pipeline.aws.dlq_messages()
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["job_id"] == job_id
    assert attributes["job_type"] == "flaky-fast"
    assert attributes["error_type"] == "TransientJobError"
    assert attributes["error_message"] == "planned failure 3"
    assert attributes["attempts"] == "3"
    assert json.loads(dead["Body"])["job_id"] == job_id


def settle(pipeline: Pipeline, rounds: int = 20) -> None:
    """Run the worker until the queue is empty, letting time pass for records left for later."""
    for _ in range(rounds):
        result = pipeline.poll()
        if result.received == 0 and pipeline.aws.queue_depth() == 0:
            return
        pipeline.clock.advance(120)
        pipeline.expire_visibility(result)
        for message in received(pipeline):
            pipeline.aws.sqs.change_message_visibility(
                QueueUrl=pipeline.aws.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )


def test_a_dead_lettered_job_delivered_many_times_is_in_the_dlq_once(pipeline: Pipeline) -> None:
    # Given a job that fails every attempt, and three more copies of its message (a producer
    # retrying, SQS delivering twice)
    job_id = pipeline.submit("flaky-fast", {"fail_times": 9})
    body = JobMessage(job_id, "flaky-fast", {"fail_times": 9}).to_body()
    for _ in range(3):
        send_raw(pipeline, body)
    # When every message has been processed
    settle(pipeline)
    # Then the job was dead-lettered once, and the DLQ holds one copy of its message
    job = pipeline.job(job_id)
    assert (job.status, job.dead_lettered, job.attempts) == (JobStatus.FAILED, True, 3)
    assert len(pipeline.aws.dlq_messages()) == 1
    assert pipeline.aws.queue_depth() == 0


def test_a_dead_letter_whose_send_failed_is_sent_once_by_a_later_delivery(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobpipe.errors import QueueError

    # Given a job on its last attempt, and a DLQ that refuses the first send
    job_id = pipeline.submit("flaky-fast", {"fail_times": 9})
    send = pipeline.queue.send_to_dlq
    failures = [QueueError("SQS SendMessage failed: ServiceUnavailable")]

    def flaky_send(body: str, attributes: dict[str, str]) -> str:
        if failures and attributes.get("attempts") == "3":
            raise failures.pop()
        return send(body, attributes)

    monkeypatch.setattr(pipeline.queue, "send_to_dlq", flaky_send)
    # When the worker dead-letters it, and the record comes back later
    settle(pipeline)
    # Then the DLQ holds exactly one copy, and the job says so
    assert failures == []
    (dead,) = pipeline.aws.dlq_messages()
    assert dead["MessageAttributes"]["replays"]["StringValue"] == "0"
    job = pipeline.job(job_id)
    assert (job.status, job.dead_lettered, job.dead_letter_sent) == (JobStatus.FAILED, True, True)


def test_a_record_that_cannot_finish_in_the_remaining_time_is_handed_back_unstarted(
    pipeline: Pipeline,
) -> None:
    # Given a job whose declared timeout (45 s) is longer than what is left of the invocation
    job_id = pipeline.submit("long")
    (message,) = received(pipeline)
    event = sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:test-jobs", "us-east-1")
    context = LambdaContext("jobpipe-worker", 30, pipeline.clock)
    # When the worker gets it
    response = worker_handler.handler(event, context)
    # Then it is reported as a failure, visible again at once, and no attempt was counted
    assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    job = pipeline.job(job_id)
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert pipeline.runs(job_id) == 0
    assert len(received(pipeline)) == 1


# --- poison messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ("{not json", "PoisonMessageError"),
        ('["a", "list"]', "PoisonMessageError"),
        ('{"type": "counted", "params": {}}', "PoisonMessageError"),
        ('{"job_id": "not-a-ulid", "type": "counted"}', "PoisonMessageError"),
        (
            json.dumps({"job_id": new_job_id(), "type": "counted", "params": {}}),
            "PoisonMessageError",
        ),
    ],
    ids=["bad-json", "not-an-object", "no-job-id", "bad-job-id", "unknown-job"],
)
def test_a_poison_message_goes_to_the_dlq_and_does_not_fail_the_rest_of_the_batch(
    pipeline: Pipeline, body: str, error_type: str
) -> None:
    # Given a good job and a message no worker can process, in the same batch
    good = pipeline.submit("counted")
    poison_id = send_raw(pipeline, body)
    messages = received(pipeline)
    assert len(messages) == 2
    # When the worker processes the batch
    response = invoke(pipeline, messages)
    # Then no record is reported failed: the good job ran, the poison went to the DLQ
    assert response == {"batchItemFailures": []}
    assert pipeline.job(good).status is JobStatus.SUCCEEDED
    (dead,) = pipeline.aws.dlq_messages()
    assert dead["Body"] == body
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["error_type"] == error_type
    assert attributes["source_message_id"] == poison_id


def test_a_job_of_a_type_the_worker_does_not_know_yet_waits_and_runs_once_it_does(
    pipeline: Pipeline,
) -> None:
    from jobpipe.domain.registry import job_type
    from tests.factories import pending_job

    # Given a job of a type the submit function knows but this worker does not yet (a deploy
    # updates the two functions one after the other)
    job = pending_job("brand-new", {"n": 1})
    pipeline.store.create(job)
    pipeline.queue.send(job.message().to_body())
    # When the worker meets it
    first = pipeline.poll()
    # Then it is handed back with a backoff, untouched, and nothing goes to the DLQ
    assert (first.received, first.left) == (1, 1)
    assert pipeline.job(job.job_id).status is JobStatus.PENDING
    assert pipeline.aws.dlq_messages() == []
    assert pipeline.poll().received == 0  # hidden for the backoff
    # And when the worker knows the type (the deploy finished), the job runs

    @job_type("brand-new", backoff=INSTANT, timeout=5, into=pipeline.registry)
    def brand_new(params: AnyParams) -> dict[str, Any]:
        return params.model_dump()

    pipeline.expire_visibility(first)
    pipeline.drain()
    assert pipeline.job(job.job_id).status is JobStatus.SUCCEEDED


def test_a_message_of_an_unknown_job_type_fails_its_job_after_the_grace_period(
    pipeline: Pipeline,
) -> None:
    from jobpipe.topology import TOPOLOGY

    # Given a job, and a message for it whose type this worker does not know
    job_id = pipeline.submit("counted")
    received(pipeline)  # the original message is in flight elsewhere
    body = JobMessage(job_id, "retired-type", {}).to_body()
    send_raw(pipeline, body)
    # When the worker processes it after the grace period for new types has passed
    pipeline.clock.advance(TOPOLOGY.worker.unknown_type_grace_seconds + 1)
    pipeline.poll()
    # Then the job is failed and dead-lettered (it would otherwise wait forever), and the DLQ
    # holds the message with the reason
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.dead_lettered is True
    assert job.error is not None and job.error.type == "UnknownJobTypeError"
    (dead,) = pipeline.aws.dlq_messages()
    assert dead["MessageAttributes"]["job_type"]["StringValue"] == "retired-type"
    assert pipeline.runs(job_id) == 0


def test_a_message_whose_payload_was_tampered_with_is_dead_lettered_and_the_job_untouched(
    pipeline: Pipeline,
) -> None:
    # Given a pending job, and a message with its id but different params
    job_id = pipeline.submit("counted", {"amount": 10})
    received(pipeline)  # the genuine message is in flight elsewhere
    send_raw(pipeline, JobMessage(job_id, "counted", {"amount": 10_000}).to_body())
    # When the worker processes the forged message
    pipeline.poll()
    # Then it did not run, the job is still pending with no attempt used, and the forged message
    # is in the DLQ
    job = pipeline.job(job_id)
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert pipeline.runs(job_id) == 0
    (dead,) = pipeline.aws.dlq_messages()
    assert json.loads(dead["Body"])["params"] == {"amount": 10_000}
    assert dead["MessageAttributes"]["error_type"]["StringValue"] == "PoisonMessageError"


# --- at most once -----------------------------------------------------------------------------


def test_a_succeeded_job_delivered_again_with_the_same_message_id_does_not_run_again(
    pipeline: Pipeline,
) -> None:
    # Given a job that ran and succeeded from a batch
    job_id = pipeline.submit("counted")
    messages = received(pipeline)
    assert invoke(pipeline, messages) == {"batchItemFailures": []}
    # When the same batch is delivered again (SQS at-least-once delivery)
    response = invoke(pipeline, messages)
    # Then the record is reported done and the job did not run a second time
    assert response == {"batchItemFailures": []}
    assert pipeline.runs(job_id) == 1
    assert pipeline.job(job_id).attempts == 1


def test_a_succeeded_job_delivered_again_with_a_new_message_id_does_not_run_again(
    pipeline: Pipeline,
) -> None:
    # Given a job that ran and succeeded
    job_id = pipeline.submit("counted", {"n": 7})
    pipeline.drain()
    # When a producer's retry sends its message again (a new message id, the same job)
    send_raw(pipeline, JobMessage(job_id, "counted", {"n": 7}).to_body())
    result = pipeline.poll()
    # Then the message is consumed, and the job neither ran again nor changed
    assert (result.received, result.deleted) == (1, 1)
    assert pipeline.runs(job_id) == 1
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 1
    assert job.result == {"n": 7}


def test_duplicates_inside_one_batch_run_the_job_once(pipeline: Pipeline) -> None:
    # Given one job whose message arrives three times in the same batch
    job_id = pipeline.submit("counted")
    body = JobMessage(job_id, "counted", {}).to_body()
    send_raw(pipeline, body)
    send_raw(pipeline, body)
    messages = received(pipeline)
    assert len(messages) == 3
    # When the worker processes the batch
    response = invoke(pipeline, messages)
    # Then the job ran once and every copy is consumed
    assert response == {"batchItemFailures": []}
    assert pipeline.runs(job_id) == 1
    assert pipeline.job(job_id).attempts == 1


def test_a_duplicate_delivered_while_the_job_is_running_is_left_for_later(
    pipeline: Pipeline,
) -> None:
    # Given a job that another worker has started (its lease runs to that Lambda's deadline)
    job_id = pipeline.submit("counted")
    now_ms = int(pipeline.clock() * 1000)
    job = pipeline.job(job_id)
    start(
        pipeline.store,
        job_id,
        payload_hash=job.payload_hash,
        lease_expires_at=now_ms + 60_000,
        now_ms=now_ms,
    )
    messages = received(pipeline)
    # When a second copy of its message reaches this worker
    response = invoke(pipeline, messages)
    # Then this worker does not run it, and reports the record so it comes back later
    assert response == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert pipeline.runs(job_id) == 0
    assert pipeline.job(job_id).status is JobStatus.RUNNING
    assert pipeline.job(job_id).attempts == 1


def test_a_job_cut_off_by_a_lambda_timeout_runs_once_more_after_the_deadline(
    pipeline: Pipeline,
) -> None:
    # Given a job whose first run is cut off (the Lambda times out mid-job)
    job_id = pipeline.submit("counted")
    pipeline.kill_next.add(job_id)
    first = pipeline.poll()
    assert first.whole_batch_failed and first.error is not None
    assert pipeline.job(job_id).status is JobStatus.RUNNING
    # When the message comes back before the dead Lambda's deadline has passed
    pipeline.expire_visibility(first)
    early = pipeline.poll()
    # Then the job is not run again yet (the first run might still be alive)
    assert pipeline.runs(job_id) == 0
    # When the deadline has passed and the message comes back
    pipeline.clock.advance(120)
    pipeline.expire_visibility(early)
    pipeline.drain()
    # Then the job runs exactly once more and succeeds on its second attempt
    assert pipeline.runs(job_id) == 1
    job = pipeline.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert pipeline.aws.queue_depth() == 0


def test_a_job_cut_off_on_its_last_attempt_is_failed_and_dead_lettered(
    pipeline: Pipeline,
) -> None:
    # Given a job with a single attempt whose run is cut off by a Lambda timeout
    from jobpipe.domain.registry import job_type

    @job_type("one-shot", max_attempts=1, backoff=INSTANT, timeout=5, into=pipeline.registry)
    def one_shot(params: AnyParams) -> None:
        from jobpipe.local.event_source import InvocationKilled

        raise InvocationKilled("the Lambda timed out mid-job")

    job_id = pipeline.submit("one-shot")
    first = pipeline.poll()
    # When its message comes back after the deadline
    pipeline.clock.advance(120)
    pipeline.expire_visibility(first)
    pipeline.drain()
    # Then the job is failed as exhausted, dead-lettered, and its message is in the DLQ
    job = pipeline.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.dead_lettered is True
    assert job.error is not None and job.error.type == "AttemptsExhaustedError"
    (dead,) = pipeline.aws.dlq_messages()
    assert dead["MessageAttributes"]["job_id"]["StringValue"] == job_id
    assert pipeline.aws.queue_depth() == 0


# --- the response Lambda reads ----------------------------------------------------------------


def test_the_batch_response_lists_exactly_the_records_to_keep(pipeline: Pipeline) -> None:
    # Given a batch with a job that succeeds, one that retries and one that fails permanently
    ok = pipeline.submit("counted")
    retry = pipeline.submit("flaky-fast", {"fail_times": 1})
    broken = pipeline.submit("broken")
    messages = received(pipeline)
    by_job = {json.loads(m["Body"])["job_id"]: m["MessageId"] for m in messages}
    # When the worker processes it
    response = invoke(pipeline, messages)
    # Then the response is exactly Lambda's partial batch shape, naming only the retry
    assert response == {"batchItemFailures": [{"itemIdentifier": by_job[retry]}]}
    assert pipeline.job(ok).status is JobStatus.SUCCEEDED
    assert pipeline.job(broken).status is JobStatus.FAILED


def test_a_batch_where_every_record_fails_is_reported_not_raised(pipeline: Pipeline) -> None:
    # Given a batch in which every job fails transiently
    ids = [pipeline.submit("flaky-fast", {"fail_times": 1}) for _ in range(3)]
    messages = received(pipeline)
    # When the worker processes it
    response = invoke(pipeline, messages)
    # Then the handler returns every record as a failure (it does not raise), so each one
    # keeps its own backoff instead of the whole batch being retried at once
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in messages
    )
    assert all(pipeline.job(job_id).status is JobStatus.RETRYING for job_id in ids)


# --- cost -------------------------------------------------------------------------------------


def test_a_successful_job_costs_two_writes_in_the_worker(pipeline: Pipeline) -> None:
    # Given a submitted job, and a counter of every AWS request the worker makes
    job_id = pipeline.submit("counted")
    messages = received(pipeline)
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.split(".", 1)[1])

    from jobpipe.adapters import clients

    for client in (clients.dynamodb(), clients.sqs()):
        client.meta.events.register("before-call.*.*", count)
    # When the worker runs it
    invoke(pipeline, messages)
    worker_calls = list(calls)
    # Then it made exactly one conditional write to start and one to succeed, nothing else
    assert worker_calls == ["dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    assert pipeline.job(job_id).status is JobStatus.SUCCEEDED
