"""The pipeline's shape: the numbers both the CDK stack and the local stack build from.

This module is the single source of truth for queue, table and function settings. The CDK app
(`infra/`) declares its resources from it, and `jobpipe local` creates the same queues and
table on moto from it, so the local pipeline behaves like the deployed one. It is plain data:
importing it costs nothing at a Lambda cold start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexShape:
    """One global secondary index of the jobs table, as both the CDK stack and the local stack
    declare it."""

    name: str
    partition_key: str
    sort_key: str
    sort_key_type: str  # "S" or "N"
    projection: str  # "KEYS_ONLY", "INCLUDE" or "ALL"
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableShape:
    """The jobs table's schema: `infra/components/table.py` and `jobpipe.local.resources` both
    build the table from `indexes()`, so the deployed and the local table cannot drift."""

    partition_key: str = "pk"
    ttl_attribute: str = "expires_at"
    # Listing without a scan (`GET /jobs`): one caller's jobs, newest first by job id (a ULID,
    # time-sortable). Its partition key is `<owner>#<shard>`, the shard taken from the job id, so
    # one owner submitting a thousand jobs a second spreads over `list_index_shards` partitions
    # (a GSI partition takes about 1,000 writes a second); a listing merges the shards newest
    # first. Its keys and its one projected attribute (`type`) never change after the job is
    # written, so a job costs this index one write, whatever happens to it later: its status is
    # read from the job's item, not from the index.
    owner_index: str = "by_owner"
    owner_index_partition_key: str = "owner_key"
    owner_index_sort_key: str = "pk"
    # Every owner's jobs, newest first, for the operator's dashboard: the same shape keyed by the
    # shard alone (`jobs#<shard>`), one more write per job and never another.
    time_index: str = "by_time"
    time_index_partition_key: str = "time_key"
    list_index_shards: int = 8
    list_index_attributes: tuple[str, ...] = ("type",)
    # The reaper's two sparse indexes (never a Scan). Only a `running` job carries
    # `lease_expires_at`, and only a job waiting to start `pending_since` (written at submit and
    # replay, and by RETRY as the time the retry is due, which is also the job's
    # `next_attempt_at`; removed by the START that picks it up), so each index holds just those
    # jobs.
    lease_index: str = "by_lease"
    lease_index_sort_key: str = "lease_expires_at"
    pending_index: str = "by_pending"
    pending_index_sort_key: str = "pending_since"
    # Their partition key is `<job type>#<shard>`, the shard taken from the job id: the jobs of
    # one busy type spread over this many partitions instead of one (a GSI partition takes about
    # 1,000 writes a second, and a throttled GSI throttles writes to the table itself).
    stuck_index_partition_key: str = "reap_key"
    stuck_index_shards: int = 8
    # Projected into the lease index: the reaper tells a job with attempts left from one
    # without, without reading it. Both change only when the lease does, so this costs no write.
    lease_index_attributes: tuple[str, ...] = ("attempts", "max_attempts")
    # The outbox: what must follow a write and may have been cut off — a workflow member's end
    # (releasing the next step), a workflow's creation (its members, its first steps queued).
    # Sparse twice over: only items that have follow-ups carry `outbox_key` (a shard), and only
    # while one is due do they carry `outbox_due`; a job with no follow-ups costs it nothing.
    outbox_index: str = "by_outbox"
    outbox_index_partition_key: str = "outbox_key"
    outbox_index_sort_key: str = "outbox_due"
    outbox_shards: int = 8

    def indexes(self) -> tuple[IndexShape, ...]:
        return (
            IndexShape(
                self.owner_index,
                self.owner_index_partition_key,
                self.owner_index_sort_key,
                "S",
                "INCLUDE",
                self.list_index_attributes,
            ),
            IndexShape(
                self.time_index,
                self.time_index_partition_key,
                self.owner_index_sort_key,
                "S",
                "INCLUDE",
                self.list_index_attributes,
            ),
            IndexShape(
                self.lease_index,
                self.stuck_index_partition_key,
                self.lease_index_sort_key,
                "N",
                "INCLUDE",
                self.lease_index_attributes,
            ),
            IndexShape(
                self.pending_index,
                self.stuck_index_partition_key,
                self.pending_index_sort_key,
                "N",
                "KEYS_ONLY",
            ),
            IndexShape(
                self.outbox_index,
                self.outbox_index_partition_key,
                self.outbox_index_sort_key,
                "N",
                "KEYS_ONLY",
            ),
        )


@dataclass(frozen=True)
class ItemBudget:
    """What one job item may hold. DynamoDB caps an item at 400 KB, counting attribute names and
    the UTF-8 bytes of every value; params and results are stored as UTF-8 JSON, so their stored
    size is measured in those bytes, not in the characters of the request."""

    item_limit_bytes: int = 400 * 1024
    # Params as stored (compact UTF-8 JSON): a submit over this is 413 before anything is written.
    params_limit_bytes: int = 256 * 1024
    # Kept free on every item after its params and result: the history of failed attempts and
    # the progress a job reports live here.
    reserve_bytes: int = 48 * 1024
    # A result is at most this, and at most what the item has left after params and the reserve.
    result_cap_bytes: int = 100 * 1024


@dataclass(frozen=True)
class WorkflowShape:
    """How large a workflow may be."""

    # Steps in one workflow: each is a job, written when the workflow is submitted.
    max_members: int = 2000
    # Nesting of chains, groups and chords.
    max_depth: int = 16
    # What one step receives from its predecessors (their results, as stored JSON): a chord's
    # body gets every header result. Past it the step fails (InputError) and so does its
    # workflow.
    input_limit_bytes: int = 256 * 1024


@dataclass(frozen=True)
class ClientShape:
    """How the functions' AWS clients (botocore) time out and retry. Short timeouts: DynamoDB and
    SQS answer in milliseconds, and a call stuck for long would eat the time the worker keeps
    for the outcome write, or the API's time to answer."""

    connect_timeout_seconds: float = 1.0
    read_timeout_seconds: float = 2.0
    # Every attempt, the first included (botocore's `total_max_attempts`, standard retry mode).
    max_attempts: int = 2

    def worst_case_seconds(self) -> float:
        """The longest one call can take: every attempt waiting out both timeouts, plus
        botocore's standard-mode backoff before each retry (at most min(2 ** (n - 1), 20) s after
        the n-th throttled attempt)."""
        waits = self.max_attempts * (self.connect_timeout_seconds + self.read_timeout_seconds)
        backoff: float = sum(min(2.0 ** (n - 1), 20.0) for n in range(1, self.max_attempts))
        return waits + backoff


@dataclass(frozen=True)
class WorkerShape:
    timeout_seconds: int = 60
    memory_mb: int = 512
    batch_size: int = 10
    batching_window_seconds: int = 1
    maximum_concurrency: int = 50
    # Kept back after a job's own time, beyond the outcome write's worst case, for the batch
    # response.
    response_slack_seconds: float = 1.0
    # What an invocation spends before its first record can start (the batch's bookkeeping):
    # a job type's timeout leaves this much of a fresh invocation unused, or it would never fit.
    start_allowance_seconds: float = 0.5
    # A job of a type the worker does not know waits this long (from its last change) before it
    # is failed as poison: during a deploy, submit may know a new type before the worker does.
    unknown_type_grace_seconds: int = 15 * 60
    # Async jobs of one batch awaited side by side, at most this many at a time.
    async_concurrency: int = 10


@dataclass(frozen=True)
class QueueShape:
    # SQS/Lambda rule: visibility >= 6 x function timeout + batching window.
    visibility_timeout_seconds: int = 6 * 60 + 1
    # A safety net above every job type's max_attempts; throttles also consume receives.
    max_receive_count: int = 10
    # Receives the worker never uses up itself: a record it hands back (no time left, a retry's
    # backoff, a duplicate while the job runs, an unknown type) once it has been received
    # max_receive_count - this many times is replaced by a fresh message, so only Lambda's
    # throttles and crashed invocations can reach maxReceiveCount.
    receives_kept_for_lambda: int = 3
    retention_seconds: int = 4 * 24 * 3600
    # Standard queues keep the original enqueue time on redrive: the DLQ must outlive the source.
    dlq_retention_seconds: int = 14 * 24 * 3600
    receive_wait_seconds: int = 20

    def resend_from_receive(self) -> int:
        return self.max_receive_count - self.receives_kept_for_lambda


@dataclass(frozen=True)
class ReaperShape:
    """The stuck-job reaper: how often it runs, and when a job counts as stuck."""

    schedule_minutes: int = 5
    # `jobpipe local` runs it more often (the grace periods stay the same).
    local_interval_seconds: int = 30
    timeout_seconds: int = 60
    memory_mb: int = 256
    # A running job is stuck when its lease (the worker's deadline) passed longer ago than the
    # queue's visibility timeout plus this margin: SQS should have redelivered its message by
    # then, and a redelivery would have started it again (with a new lease).
    lease_margin_seconds: int = 120
    # A pending job is stuck (its message may be gone) when nothing started it for this long.
    pending_grace_seconds: int = 15 * 60
    # Bounded work per run: what is left is found by the next run.
    max_jobs_per_run: int = 200
    # A follow-up (a workflow's next step, a workflow's creation) is done right after the write
    # that makes it due; one still due this long after was cut off, and the reaper does it.
    followup_grace_seconds: int = 120
    # Follow-ups done per run, beside the stuck jobs.
    max_followups_per_run: int = 200


@dataclass(frozen=True)
class ApiShape:
    max_body_bytes: int = 256 * 1024
    # POST /jobs/batch: at most this many jobs, each within `max_body_bytes` as it would be sent
    # alone, and a body of at most this much. Lambda takes at most 6 MB of synchronous request
    # event, which carries the body as an escaped JSON string beside the request's headers and
    # context: 5 MiB leaves room for those.
    max_batch_jobs: int = 100
    max_batch_body_bytes: int = 5 * 1024 * 1024
    # GET /jobs: a page holds at most `max_list_limit` jobs (`default_list_limit` unless the
    # caller asks), and one request looks at most `list_examine_limit` index entries for them: a
    # filter that matches few jobs answers a short page with a cursor rather than read on.
    default_list_limit: int = 50
    max_list_limit: int = 100
    list_examine_limit: int = 1000
    function_timeout_seconds: int = 10
    function_memory_mb: int = 512
    throttle_rate_limit: int = 100
    throttle_burst_limit: int = 200


@dataclass(frozen=True)
class MetricNames:
    """Metrics the functions emit (Powertools EMF, dimension `service`); alarms and the dashboard
    read them by these names."""

    submitted: str = "JobSubmitted"
    succeeded: str = "JobSucceeded"
    failed: str = "JobFailed"
    retried: str = "JobRetried"
    dead_lettered: str = "JobDeadLettered"
    poison: str = "PoisonMessage"
    duration: str = "JobDurationMs"
    requeued: str = "StuckJobRequeued"
    cancelled: str = "JobCancelled"
    reaper_unresolved: str = "StuckJobUnresolved"
    scheduled: str = "JobScheduled"
    recurring_fired: str = "RecurringJobCreated"


@dataclass(frozen=True)
class Topology:
    table: TableShape = TableShape()
    item: ItemBudget = ItemBudget()
    workflow: WorkflowShape = WorkflowShape()
    aws_client: ClientShape = ClientShape()
    queue: QueueShape = QueueShape()
    worker: WorkerShape = WorkerShape()
    api: ApiShape = ApiShape()
    reaper: ReaperShape = ReaperShape()
    metrics: MetricNames = MetricNames()
    retention_days: int = 30
    log_retention_days: int = 30
    service_name: str = "jobpipe"
    metrics_namespace: str = "Jobpipe"

    def worker_margin_seconds(self) -> float:
        """What the worker keeps back from a job's time: its outcome write's worst case and the
        batch response."""
        return self.aws_client.worst_case_seconds() + self.worker.response_slack_seconds

    def max_backoff_visibility_seconds(self) -> int:
        """The longest a worker may hide a record it received. SQS allows 12 h from the receive,
        not from the call; the receive was at most one invocation plus its batching window ago
        (and a minute is kept for clocks)."""
        return 12 * 3600 - self.worker.timeout_seconds - self.worker.batching_window_seconds - 60

    def max_job_timeout_seconds(self) -> float:
        """The longest `timeout` a job type may declare: a record is started only with that much
        invocation time left beside the worker's margin."""
        return (
            self.worker.timeout_seconds
            - self.worker_margin_seconds()
            - self.worker.start_allowance_seconds
        )


TOPOLOGY = Topology()
