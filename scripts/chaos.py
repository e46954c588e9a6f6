"""`make chaos`: drive jobs through the local pipeline while injecting the faults real SQS/Lambda
pipelines meet, then prove that nothing was lost, nothing ran twice and nothing is stuck.

The pipeline is the local stack (moto server, HTTP gateway in front of the real submit handler)
on a time-compressed topology (worker timeout of a few seconds, visibility 6 x timeout + window,
reaper grace periods of seconds). Workers are child processes running the event source mapping
over the real worker handler, so that one can be SIGKILLed mid-batch. Faults, all deterministic
for a seed:

    transient     a chaos job raises a transient error on the attempts its plan names
    permanent     a job type whose policy marks its error permanent (failed, not dead-lettered)
    duplicate     a job's message sent again right after submit, and again once it succeeded
    crash         an exception escapes the worker handler after the batch ran (response lost)
    kill          the worker process is SIGKILLed while a job of its batch is running
    throttle      DynamoDB PutItem/UpdateItem answered ProvisionedThroughputExceededException
    send_failure  SendMessage at submit fails past botocore's retries: 503, the client retries
    poison        malformed body, missing job id, unknown type sent straight to the queue
    timeout       a job's first attempt ends in a Lambda timeout (InvocationKilled)
    same_key      the same request sent twice at once with its Idempotency-Key
    large_params  params of non-ASCII text just under the stored params limit
    backlog       a burst of jobs that each take most of an invocation: the rest of each
                  batch is handed back for lack of time, again and again
    unknown_type  jobs of a type the workers do not know yet (a deploy in progress), which
                  they learn a few seconds into the run
    cancel        jobs cancelled by their owner right after submit, racing the workers' start
    async         jobs of an `async def` type, awaited side by side within their batch
    time          delayed jobs: a few seconds on the queue (SQS DelaySeconds), or beyond 15
                  minutes on a one-time schedule, fired by the local scheduler (its clock runs
                  ahead) and delivered twice; and scheduled jobs cancelled while their schedule
                  stays (its delete failed), whose firing must be dropped. None may run early,
                  twice, or at all once cancelled, and no schedule may be left behind
    fanin_cut     a workflow step's end is written but what follows it (counting it, releasing
                  the next step) is cut off: the reaper's follow-up sweep must finish it

    batch_partial jobs submitted in batches (POST /jobs/batch) whose BatchWriteItem leaves puts
                  unprocessed and whose SendMessageBatch fails entries (SQS's fault), as AWS
                  answers: most absorbed by the adapters' retries, some past them (the job
                  answers 503 and is sent again)

Workflows run beside the jobs, their steps carrying the same faults: chains, groups, chords, one
chain with a step that always fails, and one chord whose header has `--chord` steps (100 by
default). Each must end as its steps did: a chain's steps ran in order, each receiving its
predecessor's result; a chord's body ran once, with every header result; a failed step's
followers never ran; no workflow is left running.

Each chaos job appends its id to a ledger file (O_APPEND) just before it returns. At the end the
faults stop, the DLQ is replayed, the pipeline drains, and the store is checked against the
ledger. The last line printed is

    chaos: jobs=N faults=F lost=L duplicate_effects=D stuck=S dead_lettered=X replayed=R \
recovered=V workflows=W workflow_errors=E

and the exit status is 0 only when L, D, S and E are 0 and V equals R.

Usage: python scripts/chaos.py [--jobs N] [--chord M] [--seed S] [--workers W]
                               [--function-timeout T]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from jobpipe.domain.registry import JobContext
from jobpipe.topology import ClientShape

if TYPE_CHECKING:
    from jobpipe.domain.registry import Registry
    from jobpipe.local.stack import LocalStack
    from jobpipe.topology import Topology

FAULT_KINDS = (
    "transient",
    "permanent",
    "duplicate",
    "crash",
    "kill",
    "throttle",
    "send_failure",
    "poison",
    "timeout",
    "same_key",
    "large_params",
    "backlog",
    "unknown_type",
    "cancel",
    "async",
    "time",
    "fanin_cut",
    "batch_partial",
)
CHAOS_TYPE = "chaos"
PERMANENT_TYPE = "chaos_permanent"
# Takes most of what an invocation can give a job: a burst of them is a backlog.
LONG_TYPE = "chaos_long"
LONG_HOLD_SECONDS = 0.4
# Known to the submit function from the start, to the workers only NEW_TYPE_AFTER_SECONDS in.
NEW_TYPE = "chaos_new"
NEW_TYPE_AFTER_SECONDS = 8.0
ENV_NEW_TYPE_AT = "JOBPIPE_CHAOS_NEW_TYPE_AT"
# An `async def` twin of the chaos type, with the same faults.
ASYNC_TYPE = "chaos_async"
# Non-ASCII params this close under the stored params limit (an "é" is two bytes stored).
LARGE_PARAMS_SLACK_BYTES = 4096
CHAOS_MAX_ATTEMPTS = 3
# A chaos job is quick; its declared timeout must fit the compressed worker's budget (the worker
# keeps 2 s back for the outcome write).
CHAOS_JOB_TIMEOUT_SECONDS = 0.5
# How long a job "holds" (runs) when it is the one the worker is killed in.
HOLD_SECONDS = 0.3
BATCHING_WINDOW_SECONDS = 1
MAX_RECEIVE_COUNT = 10
# At most every Nth DynamoDB write is throttled, and every Nth SendMessage at submit fails; on a
# bigger run faults are spaced further apart (about FAULTS_PER_KIND of each), because a
# throttled call sleeps in botocore's backoff, and the local gateway runs one submit at a time.
THROTTLE_EVERY = 23
SEND_FAILURE_EVERY = 29
FAULTS_PER_KIND = 25
# The AWS clients' timeouts on the compressed clock (the worker keeps one call's worst case
# back for the outcome write); every process of the run gets them through the environment.
CHAOS_CLIENT = ClientShape(connect_timeout_seconds=0.25, read_timeout_seconds=0.75, max_attempts=2)
BOTOCORE_MAX_ATTEMPTS = CHAOS_CLIENT.max_attempts

ENV_LEDGER = "JOBPIPE_CHAOS_LEDGER"
# A follow-up still due this long after its job ended was cut off: the reaper does it.
FOLLOWUP_GRACE_SECONDS = 3
# Workflow steps' seqs, apart from the jobs'.
FLOW_SEQ_BASE = 1_000_000
BIG_CHORD_SEQ_BASE = 9_000_000
# The local scheduler's clock runs this far ahead during the run, so that a job due 16 to 19
# minutes from now fires at once; a cancelled one due 25 minutes out fires when it moves to
# LATE_SCHEDULER_AHEAD_MINUTES, after the submits.
SCHEDULER_AHEAD_MINUTES = 20
LATE_SCHEDULER_AHEAD_MINUTES = 30
LATE_CANCEL_MINUTES = 25


# --- the chaos job types -----------------------------------------------------------------------


class ChaosParams(BaseModel):
    """A job's fault plan: which of its attempts fail, time out, or hold (to be killed in)."""

    seq: int
    fail_attempts: list[int] = []
    timeout_attempt: int = 0
    hold_attempt: int = 0
    crash: bool = False
    # Carried only to be stored and sent (the large-params fault).
    text: str = ""
    # A workflow step: what follows its end is cut off the first time (the fanin_cut fault).
    cut_fanin: bool = False
    # A workflow step: what it receives from its predecessors.
    input: Any = None


class ChaosPermanentError(Exception):
    """The chaos_permanent type's error; its policy lists it as permanent."""


@dataclass
class _ChildState:
    faults: bool = False
    events_fd: int | None = None


_CHILD = _ChildState()


def emit(kind: str, job_id: str = "") -> None:
    """Tell the parent (over the events pipe) that a fault fired in this worker process."""
    if _CHILD.events_fd is not None:
        os.write(_CHILD.events_fd, f"{kind} {job_id}\n".encode())


def record_run(job_id: str) -> None:
    """One ledger line per completed run: an append-only file, one write per line."""
    fd = os.open(os.environ[ENV_LEDGER], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)


def _faults_before_run(params: ChaosParams, context: JobContext) -> None:
    from jobpipe.errors import TransientJobError
    from jobpipe.local.event_source import InvocationKilled

    if not _CHILD.faults:
        return
    if context.attempt == params.hold_attempt:
        emit("hold", context.job_id)
        time.sleep(HOLD_SECONDS)
    if context.attempt == params.timeout_attempt:
        emit("timeout", context.job_id)
        raise InvocationKilled(f"Lambda timed out in job {context.job_id}")
    if context.attempt in params.fail_attempts:
        emit("transient", context.job_id)
        raise TransientJobError(f"planned transient failure on attempt {context.attempt}")


def chaos_job(params: ChaosParams, context: JobContext) -> dict[str, Any]:
    _faults_before_run(params, context)
    record_run(context.job_id)
    return _result(params)


def _result(params: ChaosParams) -> dict[str, Any]:
    """The job's seq, and for a workflow step the seqs of what it received (nested as sent)."""
    if params.input is None:
        return {"seq": params.seq}
    return {"seq": params.seq, "received": seqs_of(params.input)}


def seqs_of(received: Any) -> Any:
    if isinstance(received, list):
        return [seqs_of(item) for item in received]
    return received.get("seq") if isinstance(received, dict) else None


async def chaos_async_job(params: ChaosParams, context: JobContext) -> dict[str, Any]:
    import asyncio

    _faults_before_run(params, context)
    await asyncio.sleep(0.05)  # some I/O, while the batch's other async jobs wait too
    context.progress(1, 1)
    record_run(context.job_id)
    return _result(params)


def chaos_long_job(params: ChaosParams, context: JobContext) -> dict[str, Any]:
    time.sleep(LONG_HOLD_SECONDS)
    return chaos_job(params, context)


def chaos_permanent_job(params: ChaosParams, context: JobContext) -> dict[str, Any]:
    _faults_before_run(params, context)
    emit("permanent", context.job_id)
    raise ChaosPermanentError(f"job {params.seq} can never succeed")


def chaos_registry(*, with_new_type: bool = True) -> Registry:
    """The chaos job types, in a registry of their own (the global one is left alone, so
    importing this module changes nothing elsewhere). `with_new_type=False`: as a worker that
    has not been deployed with NEW_TYPE yet sees them."""
    from jobpipe.domain.registry import Registry

    registry = Registry()
    types = (CHAOS_TYPE, PERMANENT_TYPE, LONG_TYPE, ASYNC_TYPE)
    for name in (*types, *((NEW_TYPE,) if with_new_type else ())):
        declare(registry, name)
    return registry


def declare(registry: Registry, name: str) -> None:
    from jobpipe.domain.registry import job_type
    from jobpipe.domain.retry import Backoff

    function, permanent = {
        CHAOS_TYPE: (chaos_job, ()),
        ASYNC_TYPE: (chaos_async_job, ()),
        NEW_TYPE: (chaos_job, ()),
        LONG_TYPE: (chaos_long_job, ()),
        PERMANENT_TYPE: (chaos_permanent_job, (ChaosPermanentError,)),
    }[name]
    job_type(
        name,
        max_attempts=CHAOS_MAX_ATTEMPTS,
        backoff=Backoff(base=0.01, cap=0.01),
        timeout=CHAOS_JOB_TIMEOUT_SECONDS,
        permanent=permanent,
        into=registry,
    )(function)


def use_registry(registry: Registry) -> Callable[[], None]:
    """Make the wiring build its services over `registry`; returns the undo."""
    from jobpipe import wiring

    name = "load_job_types"
    saved = getattr(wiring, name)
    setattr(wiring, name, lambda: registry)
    wiring.reset()

    def undo() -> None:
        setattr(wiring, name, saved)
        wiring.reset()

    return undo


# --- the topology ------------------------------------------------------------------------------


def chaos_topology(function_timeout: int) -> Topology:
    """The deployed topology with its clocks compressed, still within the SQS/Lambda rules."""
    from jobpipe.topology import TOPOLOGY

    visibility = 6 * function_timeout + BATCHING_WINDOW_SECONDS
    return replace(
        TOPOLOGY,
        aws_client=CHAOS_CLIENT,
        worker=replace(
            TOPOLOGY.worker,
            timeout_seconds=function_timeout,
            batching_window_seconds=BATCHING_WINDOW_SECONDS,
        ),
        queue=replace(
            TOPOLOGY.queue,
            visibility_timeout_seconds=visibility,
            max_receive_count=MAX_RECEIVE_COUNT,
            receive_wait_seconds=1,
        ),
        reaper=replace(
            TOPOLOGY.reaper,
            lease_margin_seconds=2,
            pending_grace_seconds=2 * visibility,
            local_interval_seconds=2,
            followup_grace_seconds=FOLLOWUP_GRACE_SECONDS,
        ),
    )


def check_guardrails(topology: Topology, registry: Registry) -> None:
    """The compressed topology obeys the same rules the CDK synth enforces."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.append(root)
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from infra.guardrails import check_topology

    check_topology(topology, registry)


# --- botocore fault hooks ----------------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(url: str, status: int, error_type: str, message: str) -> Any:
    from botocore.awsrequest import AWSResponse

    body = json.dumps({"__type": error_type, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "chaos"}
    return AWSResponse(url, status, cast(Any, headers), _Raw(body))


class FaultHook:
    """A botocore `before-send` hook: every `every`-th logical request (retries of one request
    share its body) is answered with an error, `streak` attempts in a row. A streak of
    BOTOCORE_MAX_ATTEMPTS outlasts botocore's retries, so the pipeline's own handling runs."""

    def __init__(
        self,
        kind: str,
        every: int,
        status: int,
        error_type: str,
        streak: Callable[[int, bytes], int],
        on_fire: Callable[[str, int], None],
    ) -> None:
        self.kind = kind
        self.every = every
        self.status = status
        self.error_type = error_type
        self.streak = streak
        self.on_fire = on_fire
        self.enabled = True
        self._lock = threading.Lock()
        self._seen = 0
        self._failing: dict[str, int] = {}

    def __call__(self, request: Any, **_: Any) -> Any:
        if not self.enabled:
            return None
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        key = hashlib.sha256(body).hexdigest()
        with self._lock:
            left = self._failing.get(key)
            if left is None:
                self._seen += 1
                if self._seen % self.every:
                    return None
                left = self.streak(self._seen // self.every, body)
                self.on_fire(self.kind, left)
            if left <= 1:
                self._failing.pop(key, None)
            else:
                self._failing[key] = left - 1
        return error_response(request.url, self.status, self.error_type, f"chaos: {self.kind}")


def spacing(least: int, requests: int) -> int:
    return max(least, requests // FAULTS_PER_KIND)


def throttle_hook(
    on_fire: Callable[[str, int], None], *, exhaust: Callable[[bytes], bool], every: int
) -> Any:
    def streak(n: int, body: bytes) -> int:
        # Mostly absorbed by botocore's retries; every third one outlasts them where allowed.
        if n % 3 == 0 and exhaust(body):
            return BOTOCORE_MAX_ATTEMPTS
        # Shorter than botocore's attempts: absorbed by its retries.
        return 1 + n % max(1, BOTOCORE_MAX_ATTEMPTS - 1)

    return FaultHook(
        "throttle",
        every,
        400,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        streak,
        on_fire,
    )


def install_throttling(dynamodb: Any, hook: FaultHook) -> None:
    for operation in ("PutItem", "UpdateItem"):
        dynamodb.meta.events.register(f"before-send.dynamodb.{operation}", hook)


class BatchFaults:
    """Partial batch failures, as AWS answers them. Before a BatchWriteItem or SendMessageBatch
    of two or more entries is built, one entry is taken out (it is never sent); after the call
    it is added back to the answer as SQS and DynamoDB report an entry they did not take
    (`UnprocessedItems`, or a `Failed` entry that is not the sender's fault). An entry taken out
    once is let through when sent again (the adapters' retries absorb it), except every
    `past_every`-th fault, whose entry is taken out every time it is sent: its job answers 503
    in its place and the client sends it again."""

    def __init__(self, on_fire: Callable[[str, int], None], past_every: int, most_past: int):
        self.on_fire = on_fire
        self.past_every = past_every
        self.most_past = most_past
        self.enabled = True
        self._lock = threading.Lock()
        self._fired = 0
        self._past = 0
        self._let_through: set[str] = set()
        self._always: set[str] = set()
        self._taken = threading.local()

    def install(self, dynamodb: Any, sqs: Any) -> None:
        dynamodb.meta.events.register(
            "before-parameter-build.dynamodb.BatchWriteItem", self._before_write
        )
        dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", self._after_write)
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", self._before_send)
        sqs.meta.events.register("after-call.sqs.SendMessageBatch", self._after_send)

    def _choose(self, keys: list[str]) -> int | None:
        """The index of the entry to take out of this request, if any."""
        if not self.enabled or len(keys) < 2:
            return None
        with self._lock:
            for index, key in enumerate(keys):
                if key in self._always:
                    return index
            key = keys[-1]
            if key in self._let_through:
                return None
            self._fired += 1
            past = self._fired % self.past_every == 0 and self._past < self.most_past
            if past:
                self._past += 1
                self._always.add(key)
            else:
                self._let_through.add(key)
            self.on_fire("batch_partial", BOTOCORE_MAX_ATTEMPTS if past else 1)
            return len(keys) - 1

    def _before_write(self, params: dict[str, Any], **_: Any) -> None:
        self._taken.value = None
        for table, requests in params.get("RequestItems", {}).items():
            keys = [json.dumps(r, sort_keys=True, default=str) for r in requests]
            index = self._choose(keys)
            if index is not None:
                self._taken.value = (table, requests.pop(index))

    def _after_write(self, parsed: dict[str, Any], **_: Any) -> None:
        taken = getattr(self._taken, "value", None)
        self._taken.value = None
        if taken is not None:
            table, request = taken
            parsed.setdefault("UnprocessedItems", {}).setdefault(table, []).append(request)

    def _before_send(self, params: dict[str, Any], **_: Any) -> None:
        self._taken.value = None
        entries = params.get("Entries", [])
        index = self._choose([entry["MessageBody"] for entry in entries])
        if index is not None:
            self._taken.value = entries.pop(index)

    def _after_send(self, parsed: dict[str, Any], **_: Any) -> None:
        taken = getattr(self._taken, "value", None)
        self._taken.value = None
        if taken is not None:
            parsed.setdefault("Failed", []).append(
                {"Id": taken["Id"], "SenderFault": False, "Code": "InternalError"}
            )


def is_start_write(body: bytes) -> bool:
    """A worker's START (pending|retrying -> running): failing it past botocore's retries makes
    the record go back to the queue before the job ran. (An outcome write failing that way
    after the job ran would re-run the job when its lease ends: at-least-once, by design.)"""
    return b":from_pending" in body


# --- the worker child process ------------------------------------------------------------------


def worker_child(args: argparse.Namespace) -> int:
    import boto3

    _CHILD.faults = args.faults == "on"
    _CHILD.events_fd = args.events_fd
    # A worker deployed before NEW_TYPE learns it when the deploy reaches it.
    new_type_at = float(os.environ.get(ENV_NEW_TYPE_AT, "0"))
    registry = chaos_registry(with_new_type=time.time() >= new_type_at)
    use_registry(registry)
    if NEW_TYPE not in registry:
        deployed = threading.Timer(
            max(0.0, new_type_at - time.time()), lambda: declare(registry, NEW_TYPE)
        )
        deployed.daemon = True
        deployed.start()

    from jobpipe.adapters import clients
    from jobpipe.handlers import worker
    from jobpipe.local.event_source import EventSourceMapping
    from jobpipe.settings import get_settings

    if _CHILD.faults:
        hook = throttle_hook(
            lambda kind, _streak: emit(kind), exhaust=is_start_write, every=args.throttle_every
        )
        install_throttling(clients.dynamodb(), hook)
        cut_fanin()

    def handler(event: dict[str, Any], context: Any) -> Any:
        response = worker.handler(event, context)
        if _CHILD.faults:
            for record in event["Records"]:
                body = _json_object(record["body"])
                job_id = str(body.get("job_id"))
                if body.get("params", {}).get("crash") and first_time(f"crash-{job_id}"):
                    emit("crash", job_id)
                    raise RuntimeError("chaos: the worker crashed after running its batch")
        return response

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    esm = EventSourceMapping(
        boto3.client("sqs"),
        get_settings().queue_url,
        handler,
        batch_size=10,
        batching_window_seconds=BATCHING_WINDOW_SECONDS,
        function_timeout_seconds=args.function_timeout,
        poll_wait_seconds=1,
    )
    parent = os.getppid()
    # A worker outlives nothing: it stops when told to, or when the run that started it is gone.
    while not stop.is_set() and os.getppid() == parent:
        try:
            esm.poll_once()
        except Exception:  # noqa: BLE001  (a failed poll must not end the worker)
            stop.wait(0.5)
    return 0


def cut_fanin() -> None:
    """The first time a planned step's end is followed up, the process "dies" before any of
    it is done: the step's end is written, what follows it is not."""
    from jobpipe.errors import StoreError
    from jobpipe.followups import FollowUps

    job_ended = FollowUps.job_ended

    def cut(self: FollowUps, job: Any) -> None:
        if job.params.get("cut_fanin") and first_time(f"fanin-{job.job_id}"):
            emit("fanin_cut", job.job_id)
            raise StoreError("chaos: the process died before the step's follow-ups")
        job_ended(self, job)

    FollowUps.job_ended = cut  # type: ignore[method-assign]


def first_time(name: str) -> bool:
    """True once per name across every worker process of the run (a marker file beside the
    ledger), so a planned crash happens once whichever delivery of the batch gets there."""
    marker = Path(os.environ[ENV_LEDGER]).with_name(name)
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def _json_object(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --- the parent: the run -----------------------------------------------------------------------


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] += n


@dataclass
class Plan:
    seq: int
    type: str
    params: dict[str, Any]
    dup_now: bool = False
    dup_done: bool = False
    same_key: bool = False
    cancel: bool = False
    # Time: run this many seconds from now; a scheduled job cancelled straight in the store
    # (its schedule left to fire, as when deleting it failed).
    delay_seconds: float | None = None
    cancel_in_store: bool = False
    batched: bool = False


# The jobs that carry one fault kind each in every run, apart so that they rarely share a batch
# (faults in one batch compound: each costs a visibility timeout); a small run still injects
# every kind.
FORCED = {
    5: "permanent",
    10: "transient",
    12: "delay",
    15: "dead_letter",
    17: "schedule",
    20: "timeout",
    22: "late_cancel",
    25: "hold",
    30: "crash",
    35: "dup_now",
    40: "dup_done",
    42: "same_key",
    44: "large_params",
    46: "unknown_type",
    47: "cancel",
    48: "async",
    3: "batched",
    49: "batched",
}
BACKLOG_BURST = 10


def in_backlog_burst(seq: int, jobs: int) -> bool:
    """The last BACKLOG_BURST jobs of the run, and BACKLOG_BURST of every 200."""
    return seq >= jobs - BACKLOG_BURST or seq % 200 >= 200 - BACKLOG_BURST


def make_plans(jobs: int, rng: random.Random) -> list[Plan]:
    """Each job's faults, drawn from the seed."""
    from jobpipe.topology import TOPOLOGY

    plans: list[Plan] = []
    large_text = "é" * ((TOPOLOGY.item.params_limit_bytes - LARGE_PARAMS_SLACK_BYTES) // 2)
    for seq in range(jobs):
        params: dict[str, Any] = {"seq": seq}
        forced = FORCED.get(seq, "")
        if in_backlog_burst(seq, jobs) and not forced:
            plans.append(Plan(seq, LONG_TYPE, params))
            continue
        job_type = CHAOS_TYPE
        # A job that carries a fault of its own carries no drawn one: they could cancel out
        # (a permanent type failing transiently on every attempt would never recover).
        roll = rng.random() if not forced else 1.0
        if forced == "permanent" or roll < 0.04:
            job_type = PERMANENT_TYPE
        if forced == "transient" or 0.04 <= roll < 0.24:
            params["fail_attempts"] = sorted(rng.sample(range(1, CHAOS_MAX_ATTEMPTS + 1), 1))
        if forced == "dead_letter" or 0.24 <= roll < 0.27:
            # Every attempt fails while faults are on: dead-lettered, then recovered by replay.
            params["fail_attempts"] = list(range(1, CHAOS_MAX_ATTEMPTS + 1))
        if forced == "unknown_type" or 0.27 <= roll < 0.29:
            job_type = NEW_TYPE
        if forced == "async" or 0.29 <= roll < 0.39:
            job_type = ASYNC_TYPE
        if forced == "timeout" or rng.random() < 0.03:
            params["timeout_attempt"] = 1
        if forced == "hold" or rng.random() < 0.01:
            params["hold_attempt"] = 1
        if forced == "crash" or rng.random() < 0.01:
            params["crash"] = True
        if forced == "large_params" or rng.random() < 0.01:
            params["text"] = large_text
        plan = Plan(
            seq,
            job_type,
            params,
            dup_now=forced == "dup_now" or rng.random() < 0.03,
            dup_done=forced == "dup_done" or rng.random() < 0.03,
            same_key=forced == "same_key" or rng.random() < 0.03,
            cancel=forced == "cancel" or rng.random() < 0.03,
            batched=forced == "batched" or rng.random() < 0.05,
        )
        time_roll = rng.random() if not forced else 1.0
        if forced == "delay" or time_roll < 0.03:
            plan.delay_seconds = rng.uniform(1, 3)
        elif forced == "schedule" or time_roll < 0.05:
            plan.delay_seconds = rng.uniform(16, SCHEDULER_AHEAD_MINUTES - 1) * 60
        elif forced == "late_cancel" or time_roll < 0.06:
            plan.delay_seconds = LATE_CANCEL_MINUTES * 60
            plan.cancel = plan.cancel_in_store = True
        if plan.delay_seconds is not None:
            # A copy of its message sent early would be handed back until the job is due (up to
            # 25 minutes), outliving the run.
            plan.dup_now = False
        plans.append(plan)
    return plans


@dataclass
class FlowPlan:
    """A workflow of chaos steps, and how it must end."""

    seq: int
    tree: dict[str, Any]
    # Holds a step that always fails (in its second place): it must end failed, naming it.
    fails: bool = False


def flow_step(seq: int, rng: random.Random, *, job_type: str = CHAOS_TYPE) -> dict[str, Any]:
    """A step whose faults each leave it attempts to succeed: a workflow step that fails
    for good fails its workflow, which a replay does not undo."""
    params: dict[str, Any] = {"seq": seq}
    roll = rng.random()
    if roll < 0.15:
        params["fail_attempts"] = [1]
    elif roll < 0.19:
        params["timeout_attempt"] = 1
    elif roll < 0.21:
        params["crash"] = True
    if rng.random() < 0.12:
        params["cut_fanin"] = True
    return {"type": job_type, "params": params}


def make_flow_plans(count: int, chord_size: int, rng: random.Random) -> list[FlowPlan]:
    """Chains, chords, chains of groups and groups in turn; the second a chain that fails; the
    last a chord of `chord_size` header steps."""
    plans = []
    for w in range(count):
        seqs = iter(range(FLOW_SEQ_BASE + w * 1000, FLOW_SEQ_BASE + (w + 1) * 1000))

        def one(job_type: str = CHAOS_TYPE, seqs: Iterator[int] = seqs) -> dict[str, Any]:
            return flow_step(next(seqs), rng, job_type=job_type)

        tree: dict[str, Any]
        if w == 1:
            tree = {"chain": [one(), one(PERMANENT_TYPE), one()]}
            plans.append(FlowPlan(w, tree, fails=True))
            continue
        shape = w % 4
        if shape == 0:
            tree = {"chain": [one() for _ in range(rng.randint(3, 5))]}
        elif shape == 1:
            tree = {"chord": {"header": [one() for _ in range(rng.randint(3, 8))], "body": one()}}
        elif shape == 2:
            tree = {"chain": [{"group": [one(), one()]}, one(), {"group": [one(), one(), one()]}]}
        else:
            tree = {"group": [one(ASYNC_TYPE) for _ in range(rng.randint(2, 4))]}
        plans.append(FlowPlan(w, tree))
    header = [flow_step(BIG_CHORD_SEQ_BASE + i, rng) for i in range(chord_size)]
    body = flow_step(BIG_CHORD_SEQ_BASE + chord_size, rng)
    plans.append(FlowPlan(count, {"chord": {"header": header, "body": body}}))
    return plans


def check_flow(
    plan: FlowPlan, workflow: Any, members: dict[str, Any], runs: Counter[str]
) -> list[str]:
    """What is wrong with how the workflow ended (nothing, when it ended as its steps did)."""
    from jobpipe.domain.states import JobStatus, WorkflowStatus
    from jobpipe.domain.workflow import map_refs

    if workflow is None:
        return [f"workflow {plan.seq}: missing from the store"]
    wid = workflow.workflow_id
    if not workflow.is_terminal:
        return [f"workflow {wid}: still {workflow.status.value}"]
    problems = []
    ids = workflow.member_ids()
    jobs = [members.get(job_id) for job_id in ids]
    for job_id, job in zip(ids, jobs, strict=True):
        if job is None:
            problems.append(f"workflow {wid}: step {job_id} missing from the store")
        elif not job.is_terminal:
            problems.append(f"workflow {wid}: step {job_id} still {job.status.value}")
        elif runs[job_id] > 1:
            problems.append(f"workflow {wid}: step {job_id} completed {runs[job_id]} times")
        elif job.status is JobStatus.CANCELLED and (runs[job_id] or job.attempts):
            problems.append(f"workflow {wid}: skipped step {job_id} ran")
    if problems:
        return problems
    seq_of = {job.job_id: job.params["seq"] for job in jobs if job is not None}
    if workflow.status is WorkflowStatus.SUCCEEDED:
        if plan.fails:
            return [f"workflow {wid}: succeeded though a step always fails"]
        for job in jobs:
            assert job is not None and job.step is not None
            if job.status is not JobStatus.SUCCEEDED or runs[job.job_id] != 1:
                problems.append(f"workflow {wid}: succeeded, but {job.job_id} is {job.status}")
                continue
            inputs = job.step.inputs
            if inputs is None:
                continue
            expected = map_refs(inputs, lambda job_id: seq_of[job_id])
            if (job.result or {}).get("received") != expected:
                problems.append(f"workflow {wid}: {job.step.path} received the wrong results")
            before = [members[i].completed_at or 0 for i in _leaves(inputs)]
            if (job.started_at or 0) < max(before):
                problems.append(f"workflow {wid}: {job.step.path} started before its inputs ended")
        return problems
    # Failed (or cancelled): the step it names ended that way (or was dead-lettered and
    # replayed since); every step that never ran was skipped.
    error = workflow.error
    cause = members.get(error.job_id) if error is not None else None
    if cause is None:
        return [f"workflow {wid}: {workflow.status.value} naming no step"]
    if cause.status is JobStatus.SUCCEEDED and not cause.replays:
        problems.append(f"workflow {wid}: {workflow.status.value} naming a step that succeeded")
    if plan.fails and (error is None or error.path != "chain[1]"):
        problems.append(f"workflow {wid}: failed, but not because of its failing step")
    return problems


def _leaves(ref: Any) -> list[str]:
    return [leaf for part in ref for leaf in _leaves(part)] if isinstance(ref, list) else [ref]


class Children:
    """Worker processes over the same moto server; restarted when one dies."""

    def __init__(
        self, count: int, faults: bool, function_timeout: int, tally: Tally, log: Path
    ) -> None:
        self.count = count
        self.faults = faults
        self.function_timeout = function_timeout
        self.tally = tally
        self.log = log
        self.max_kills = 0
        # Each job makes two worker writes (start, outcome).
        self.throttle_every = THROTTLE_EVERY
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def start(self) -> Children:
        for slot in range(self.count):
            self._spawn(slot)
        self._supervisor.start()
        return self

    def _spawn(self, slot: int) -> None:
        read_fd, write_fd = os.pipe()
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker-child",
            "--faults",
            "on" if self.faults else "off",
            "--events-fd",
            str(write_fd),
            "--function-timeout",
            str(self.function_timeout),
            "--throttle-every",
            str(self.throttle_every),
        ]
        with self.log.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603  (this script, with our own arguments)
                command,
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
                env=os.environ.copy(),
            )
        os.close(write_fd)
        with self._lock:
            self._procs[slot] = proc
        threading.Thread(target=self._read_events, args=(proc, read_fd), daemon=True).start()

    def _read_events(self, proc: subprocess.Popen[bytes], read_fd: int) -> None:
        with os.fdopen(read_fd, "rb") as events:
            for line in events:
                kind = line.decode().split(" ", 1)[0]
                if kind == "hold":
                    self._kill_mid_batch(proc)
                else:
                    self.tally.add(kind)

    def _kill_mid_batch(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._stop.is_set() or self.tally.counts["kill"] >= self.max_kills:
                return
            # The child is inside a job of its batch right now (it said so just before it slept).
            proc.send_signal(signal.SIGKILL)
            self.tally.add("kill")

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            for slot in range(self.count):
                with self._lock:
                    proc = self._procs[slot]
                    dead = proc is not None and proc.poll() is not None
                if dead and not self._stop.is_set():
                    self._spawn(slot)

    def stop(self) -> None:
        """Let each worker finish its batch and exit."""
        self._stop.set()
        self._supervisor.join(5)
        with self._lock:
            procs = [p for p in self._procs if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _chaos_stack_class(topology: Topology) -> type[LocalStack]:
    import boto3

    from jobpipe.local.resources import create_resources
    from jobpipe.local.stack import LocalStack

    class ChaosStack(LocalStack):
        def _create_resources(self) -> Any:
            return create_resources(
                boto3.client("dynamodb"), boto3.client("sqs"), prefix=self.prefix, topology=topology
            )

    return ChaosStack


@dataclass
class Result:
    jobs: int
    faults: int
    lost: int
    duplicate_effects: int
    stuck: int
    dead_lettered: int
    replayed: int
    recovered: int
    tally: dict[str, int]
    poison_in_dlq: int
    poison_left: int
    seconds: float
    workflows: int = 0
    workflow_errors: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicate_effects == 0
            and self.stuck == 0
            and self.recovered == self.replayed
            and self.workflow_errors == 0
        )

    def line(self) -> str:
        return (
            f"chaos: jobs={self.jobs} faults={self.faults} lost={self.lost} "
            f"duplicate_effects={self.duplicate_effects} stuck={self.stuck} "
            f"dead_lettered={self.dead_lettered} replayed={self.replayed} "
            f"recovered={self.recovered} workflows={self.workflows} "
            f"workflow_errors={self.workflow_errors}"
        )


def run(
    jobs: int,
    *,
    chord: int = 100,
    seed: int = 7,
    workers: int = 2,
    function_timeout: int = 6,
    timeout: float = 900.0,
    keep: bool = False,
    say: Callable[[str], None] | None = None,
) -> Result:
    started = time.monotonic()
    out = sys.stdout
    tell = say or (lambda text: print(text, file=out, flush=True))
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    # The moto server's and the gateway's request logs would drown the tally.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    registry = chaos_registry()
    topology = chaos_topology(function_timeout)
    check_guardrails(topology, registry)
    from jobpipe import settings

    os.environ[settings.ENV_AWS_CONNECT_TIMEOUT] = str(CHAOS_CLIENT.connect_timeout_seconds)
    os.environ[settings.ENV_AWS_READ_TIMEOUT] = str(CHAOS_CLIENT.read_timeout_seconds)
    os.environ[settings.ENV_AWS_MAX_ATTEMPTS] = str(CHAOS_CLIENT.max_attempts)
    os.environ[ENV_NEW_TYPE_AT] = str(time.time() + NEW_TYPE_AFTER_SECONDS)
    undo = use_registry(registry)
    workdir = Path(tempfile.mkdtemp(prefix="jobpipe-chaos-"))
    ledger = workdir / "ledger"
    ledger.touch()
    os.environ[ENV_LEDGER] = str(ledger)
    # The in-process handlers' output (Powertools flushes metrics to stdout) goes to a file.
    noise = (workdir / "pipeline.log").open("w")
    result: Result | None = None
    try:
        with (
            contextlib.redirect_stdout(noise),
            _chaos_stack_class(topology)(port=0, prefix="chaos", worker=False) as stack,
        ):
            result = _run(
                stack, registry, topology, jobs, chord, seed, workers, timeout, workdir, tell
            )
            return result
    finally:
        noise.close()
        undo()
        for name in (
            ENV_LEDGER,
            ENV_NEW_TYPE_AT,
            settings.ENV_AWS_CONNECT_TIMEOUT,
            settings.ENV_AWS_READ_TIMEOUT,
            settings.ENV_AWS_MAX_ATTEMPTS,
        ):
            os.environ.pop(name, None)
        # The ledger and the workers' logs stay for a look when the run failed (or was asked to).
        kept = keep or result is None or not result.ok
        if not kept:
            shutil.rmtree(workdir, ignore_errors=True)
        where = f"; ledger and logs in {workdir}" if kept else ""
        tell(f"chaos: elapsed {time.monotonic() - started:.1f} s{where}")


def _run(
    stack: LocalStack,
    registry: Registry,
    topology: Topology,
    jobs: int,
    chord: int,
    seed: int,
    workers: int,
    timeout: float,
    workdir: Path,
    say: Callable[[str], None],
) -> Result:
    import boto3

    from jobpipe.adapters import clients
    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.adapters.sqs import SQSJobQueue
    from jobpipe.client import JobsClient
    from jobpipe.domain.job import MAX_QUEUE_DELAY_SECONDS, new_job_id
    from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS
    from jobpipe.domain.states import CANCEL, JobStatus
    from jobpipe.followups import FollowUps
    from jobpipe.ops.dlq import Action, DeadLetterQueue
    from jobpipe.reaper.service import Reaper, ReaperPolicy
    from jobpipe.workflow.service import WorkflowService

    started = time.monotonic()
    config = stack.config
    rng = random.Random(seed)  # noqa: S311  (fault plans, not secrets)
    tally = Tally()
    # Plain clients for the run's own reads and sends: no faults on them.
    sqs = boto3.client("sqs")
    store = DynamoDBJobStore(config.table_name, boto3.client("dynamodb"))

    # Faults on the submit function's clients (the gateway runs it in this process).
    def fired(kind: str, streak: int) -> None:
        tally.add(kind)
        if kind == "send_failure" or streak >= BOTOCORE_MAX_ATTEMPTS:
            tally.add(f"{kind}_past_retries")

    # Each job makes two PutItems at submit (its Idempotency-Key, the job) and one SendMessage.
    throttle = throttle_hook(
        fired, exhaust=lambda _body: True, every=spacing(THROTTLE_EVERY, 2 * jobs)
    )
    install_throttling(clients.dynamodb(), throttle)
    send_failure = FaultHook(
        "send_failure",
        spacing(SEND_FAILURE_EVERY, jobs),
        500,
        "com.amazonaws.sqs#InternalError",
        lambda _n, _body: BOTOCORE_MAX_ATTEMPTS,
        fired,
    )
    clients.sqs().meta.events.register("before-send.sqs.SendMessage", send_failure)
    batch_faults = BatchFaults(fired, past_every=3, most_past=max(1, jobs // 100))
    batch_faults.install(clients.dynamodb(), clients.sqs())

    # The reaper, on the compressed clock, with its own clients; it finishes follow-ups and
    # workflow creations cut short.
    reaper_store = DynamoDBJobStore(config.table_name, boto3.client("dynamodb"))
    reaper_queue = SQSJobQueue(config.queue_url, config.dlq_url, boto3.client("sqs"))
    finish = WorkflowService(reaper_store, reaper_queue, registry).finish
    reaper = Reaper(
        reaper_store,
        reaper_queue,
        registry,
        followups=FollowUps(reaper_store, reaper_queue, finish_workflow=finish),
        policy=ReaperPolicy(
            running_grace_ms=(
                topology.queue.visibility_timeout_seconds + topology.reaper.lease_margin_seconds
            )
            * 1000,
            pending_grace_ms=topology.reaper.pending_grace_seconds * 1000,
            max_jobs_per_run=topology.reaper.max_jobs_per_run,
            followup_grace_ms=topology.reaper.followup_grace_seconds * 1000,
        ),
    )
    reaped: Counter[str] = Counter()
    stop_reaper = threading.Event()

    def reap() -> None:
        while not stop_reaper.wait(topology.reaper.local_interval_seconds):
            with contextlib.suppress(Exception):
                reaped.update(reaper.run().counts())

    reaper_thread = threading.Thread(target=reap, daemon=True)
    reaper_thread.start()

    log = workdir / "workers.log"
    children = Children(workers, True, topology.worker.timeout_seconds, tally, log)
    plans = make_plans(jobs, rng)
    children.max_kills = max(1, sum(1 for p in plans if p.params.get("hold_attempt")) // 2)
    children.throttle_every = spacing(THROTTLE_EVERY, 2 * jobs // workers)
    children.start()

    # Poison messages, straight to the queue.
    poison_bodies = []
    for i in range(max(1, jobs // 300)):
        poison_bodies += [
            f"{{not json {i}",
            json.dumps({"type": CHAOS_TYPE, "params": {"seq": -1 - i}}),
            json.dumps({"job_id": new_job_id(), "type": "no_such_type", "params": {}}),
        ]
    for body in poison_bodies:
        sqs.send_message(QueueUrl=config.queue_url, MessageBody=body)
        tally.add("poison")

    # Submit over HTTP, with an Idempotency-Key each.
    client = JobsClient(config.api_url, timeout=30)
    ids: dict[int, str] = {}

    twins: dict[int, str] = {}
    # What the owner's cancel answered: the job's status then ("finished" if it was refused).
    cancel_answers: dict[str, str] = {}

    def cancel(job_id: str) -> str:
        """The owner cancels over HTTP, racing the workers' start."""
        from jobpipe.client import ApiError

        for _ in range(7):
            try:
                return client.cancel(job_id).status
            except ApiError as error:
                if error.status == 409:
                    return "finished"
                if error.status != 503:
                    raise
                time.sleep(error.retry_after or 0.5)
        return "unknown"

    from jobpipe.api.identity import LOCAL_PRINCIPAL

    def submit_twin(plan: Plan, key: str) -> None:
        """The same request at the same moment from another API function environment: the
        submit service called directly, beside the gateway's, which serves one at a time."""
        from jobpipe import wiring
        from jobpipe.errors import ServiceUnavailableError
        from jobpipe.submit.service import SubmitRequest

        request = SubmitRequest(
            LOCAL_PRINCIPAL, plan.type, plan.params, key, delay_seconds=plan.delay_seconds
        )
        for _ in range(7):
            try:
                twins[plan.seq] = wiring.submit_service().submit(request).job.job_id
                return
            except ServiceUnavailableError:
                time.sleep(0.5)

    def submit(plan: Plan) -> None:
        key = f"chaos-{seed}-{plan.seq}"
        twin = None
        if plan.same_key:
            twin = threading.Thread(target=submit_twin, args=(plan, key))
            twin.start()
            tally.add("same_key")
        if plan.params.get("text"):
            tally.add("large_params")
        if plan.type == LONG_TYPE:
            tally.add("backlog")
        if plan.type == NEW_TYPE:
            tally.add("unknown_type")
        if plan.type == ASYNC_TYPE:
            tally.add("async")
        submitted = client.submit(
            plan.type,
            plan.params,
            idempotency_key=key,
            delay_seconds=plan.delay_seconds,
            retries=6,
        )
        ids[plan.seq] = submitted.job_id
        if plan.delay_seconds is not None:
            tally.add("time")
        if plan.cancel_in_store:
            store.apply(CANCEL, submitted.job_id, now=int(time.time() * 1000))
            cancel_answers[submitted.job_id] = "cancelled"
        elif plan.cancel:
            cancel_answers[submitted.job_id] = cancel(submitted.job_id)
            tally.add("cancel")
        if twin is not None:
            twin.join()
        if plan.dup_now:
            job = store.get(submitted.job_id)
            if job is not None:
                sqs.send_message(QueueUrl=config.queue_url, MessageBody=job.message().to_body())
                tally.add("duplicate")

    # The local scheduler fires on a clock running ahead, every firing delivered twice.
    ahead = [SCHEDULER_AHEAD_MINUTES * 60.0]
    assert stack.scheduler is not None
    stack.scheduler.clock = lambda: time.time() + ahead[0]
    stack.scheduler.extra_deliveries = 1

    def submit_batches(batched: list[Plan]) -> None:
        """Jobs sent 10 a batch, without keys; a job answered 503 in its place was not queued
        (and was removed): it is sent again in the next batch."""
        from jobpipe.client import BatchJob, SubmittedJob

        left = list(batched)
        for _ in range(20):
            if not left:
                return
            again: list[Plan] = []
            for start in range(0, len(left), 10):
                chunk = left[start : start + 10]
                answers = client.submit_many(BatchJob(p.type, p.params) for p in chunk)
                for plan, answer in zip(chunk, answers, strict=True):
                    if isinstance(answer, SubmittedJob):
                        ids[plan.seq] = answer.job_id
                    elif answer.status == 503:
                        again.append(plan)
                    else:
                        raise RuntimeError(f"a batched job was refused: {answer}")
            left = again

    batched = [
        plan
        for plan in plans
        if plan.batched and not (plan.same_key or plan.cancel) and plan.delay_seconds is None
    ]
    batched_seqs = {plan.seq for plan in batched}
    batcher = threading.Thread(target=submit_batches, args=(batched,))
    batcher.start()
    flow_plans = make_flow_plans(max(3, jobs // 25), chord, rng)
    flows: dict[int, str] = {}
    flow_members: dict[int, list[str]] = {}

    def submit_flow(plan: FlowPlan) -> None:
        key = f"chaos-flow-{seed}-{plan.seq}"
        # A large workflow takes a while on moto: each retry finishes what the last began.
        submitted = client.submit_workflow(plan.tree, idempotency_key=key, retries=30)
        flows[plan.seq] = submitted.workflow_id
        flow_members[plan.seq] = [str(s.job_id) for s in submitted.tree.steps()]

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(submit, [plan for plan in plans if plan.seq not in batched_seqs]))
        list(pool.map(submit_flow, flow_plans))
    batcher.join()
    for plan in batched:
        if plan.dup_now and plan.seq in ids:
            job = store.get(ids[plan.seq])
            if job is not None:
                sqs.send_message(QueueUrl=config.queue_url, MessageBody=job.message().to_body())
                tally.add("duplicate")
    steps = sum(len(m) for m in flow_members.values())
    say(
        f"chaos: submitted {len(ids)} jobs and {len(flows)} workflows of {steps} steps in "
        f"{time.monotonic() - started:.1f} s"
    )
    # The schedules of the jobs cancelled in the store fire now, and must find them cancelled.
    ahead[0] = LATE_SCHEDULER_AHEAD_MINUTES * 60.0
    scheduler_client = boto3.client("scheduler")

    def one_time_schedules() -> list[str]:
        listed = scheduler_client.list_schedules(GroupName=config.schedule_group)
        return [s["Name"] for s in listed["Schedules"] if s["Name"].startswith("job-")]

    fire_deadline = time.monotonic() + 60
    while one_time_schedules() and time.monotonic() < fire_deadline:
        time.sleep(0.5)
    by_id = {ids[p.seq]: p for p in plans}
    dup_done_left = {ids[p.seq] for p in plans if p.dup_done}

    def queue_empty() -> bool:
        attributes = sqs.get_queue_attributes(
            QueueUrl=config.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(value) == 0 for value in attributes.values())

    open_jobs = set(by_id)
    open_flows = set(flows.values())

    def settle(deadline: float, on_succeeded: Callable[[str], None] | None = None) -> bool:
        """Wait until the queue has been empty twice in a row, and no workflow is running (a
        step waits for a follow-up that only the reaper will do)."""
        empty_before = False
        while time.monotonic() < deadline:
            for job_id in sorted(open_jobs):
                job = store.get(job_id)
                if job is not None and job.status.is_terminal:
                    open_jobs.discard(job_id)
                    if on_succeeded is not None and job.status is JobStatus.SUCCEEDED:
                        on_succeeded(job_id)
            for workflow_id in sorted(open_flows):
                workflow = store.get_workflow(workflow_id)
                if workflow is not None and workflow.is_terminal:
                    open_flows.discard(workflow_id)
            empty = queue_empty()
            if empty and empty_before and not open_flows:
                return True
            empty_before = empty
            time.sleep(1.0)
        return False

    def redeliver_finished(job_id: str) -> None:
        if job_id in dup_done_left:
            dup_done_left.discard(job_id)
            job = store.get(job_id)
            if job is not None:
                sqs.send_message(QueueUrl=config.queue_url, MessageBody=job.message().to_body())
                tally.add("duplicate")

    deadline = time.monotonic() + timeout
    drained = settle(deadline, redeliver_finished)
    say(
        f"chaos: faults phase {'drained' if drained else 'timed out'} after "
        f"{time.monotonic() - started:.1f} s; {len(open_jobs)} jobs not terminal, "
        f"{len(open_flows)} workflows running"
    )

    # Faults off: clean workers, no hooks; then replay the DLQ.
    children.stop()
    throttle.enabled = False
    send_failure.enabled = False
    batch_faults.enabled = False
    children = Children(workers, False, topology.worker.timeout_seconds, tally, log).start()
    dlq = DeadLetterQueue.on_sqs(sqs, store, dlq_url=config.dlq_url, queue_url=config.queue_url)
    letters = dlq.list_messages()
    known = set(by_id)
    # SQS moves a message after maxReceiveCount receives; the worker's own hand-backs must never
    # get it there (only the faults that kill or crash invocations may, on a job's last attempt).
    sqs_moved_with_attempts_left = set()
    for letter in letters:
        job = store.get(letter.job_id) if letter.job_id in known else None
        moved_by_sqs = letter.error_type == "MaxReceiveCountExceeded"
        if job is not None and moved_by_sqs and job.attempts < job.max_attempts:
            sqs_moved_with_attempts_left.add(job.job_id)
    dead_lettered_ids = {letter.job_id for letter in letters if letter.job_id in known}
    # A poison message can reach the DLQ more than once (its batch was redelivered after a
    # crash or a kill): count bodies, not copies.
    poison_in_dlq = len({letter.body for letter in letters if letter.job_id not in known})
    for job_id in known:
        job = store.get(job_id)
        if job is not None and job.dead_lettered:
            dead_lettered_ids.add(job_id)
    replayed: set[str] = set()
    for _ in range(5):
        report = dlq.replay()
        for outcome in report.outcomes:
            if outcome.action in (Action.REPLAYED, Action.REQUEUED) and outcome.job_id:
                replayed.add(outcome.job_id)
                open_jobs.add(outcome.job_id)
        if not any(o.action is Action.BUSY for o in report.outcomes):
            break
        time.sleep(topology.worker.timeout_seconds)
    settle(deadline)
    children.stop()
    stop_reaper.set()
    reaper_thread.join(10)
    poison_left = len({letter.body for letter in dlq.list_messages() if letter.job_id not in known})

    # The checks.
    runs = Counter(ledger_lines(Path(os.environ[ENV_LEDGER])))
    lost = duplicate_effects = stuck = recovered = 0
    problems: list[str] = []
    for job_id, plan in by_id.items():
        job = store.get(job_id)
        completed = runs[job_id]
        if completed > 1:
            duplicate_effects += 1
            problems.append(
                f"{job_id}: handler completed {completed} times ({plan.type}, {_plan_faults(plan)})"
            )
        if job is None:
            lost += 1
            problems.append(f"{job_id}: missing from the store")
            continue
        if not job.status.is_terminal:
            stuck += 1
            lost += 1
            problems.append(f"{job_id}: still {job.status.value}")
            continue
        succeeded = job.status is JobStatus.SUCCEEDED
        expected = plan.type != PERMANENT_TYPE
        if plan.cancel and job.status is JobStatus.CANCELLED:
            # Cancelled at once: it never started. Asked to stop while running: it stopped
            # before its code completed (a run that completes ends succeeded).
            if completed or (cancel_answers.get(job_id) == "cancelled" and job.attempts):
                lost += 1
                problems.append(
                    f"{job_id}: cancelled with {job.attempts} attempts, {completed} runs"
                )
        elif (
            succeeded != expected or (succeeded and completed == 0) or (not succeeded and completed)
        ):
            lost += 1
            problems.append(f"{job_id}: {job.status.value} with {completed} ledger lines")
        elif not succeeded and job.dead_lettered:
            lost += 1
            problems.append(f"{job_id}: a permanent failure was dead-lettered")
        # On the queue's delay (the schedules fire on a clock running ahead, by design here).
        if (
            job.run_at is not None
            and plan.delay_seconds is not None
            and plan.delay_seconds <= MAX_QUEUE_DELAY_SECONDS
            and job.started_at is not None
            and job.started_at < job.run_at - EARLY_START_TOLERANCE_MS
        ):
            duplicate_effects += 1
            problems.append(f"{job_id}: started {job.run_at - job.started_at} ms before its time")
        if job_id in replayed and succeeded:
            recovered += 1
    # A job whose submit answered an error must not run: its caller sends it again. (A
    # workflow's steps are checked with their workflow: a retry with the same key finishes the
    # creation a 503 cut short, so they run.)
    steps_of_flows = {job_id for members in flow_members.values() for job_id in members}
    for job_id in sorted(set(runs) - set(by_id) - set(twins.values()) - steps_of_flows):
        duplicate_effects += 1
        problems.append(f"{job_id}: ran, but its submit was answered with an error")
    for seq, twin_id in twins.items():
        if twin_id != ids[seq]:
            duplicate_effects += 1
            problems.append(f"{ids[seq]}: the same request at once made a second job {twin_id}")
    missing_twins = sum(1 for p in plans if p.same_key and p.seq not in twins)
    if missing_twins:
        lost += missing_twins
        problems.append(f"{missing_twins} concurrent same-key submits got no job")
    for job_id in sorted(sqs_moved_with_attempts_left):
        stuck += 1
        problems.append(f"{job_id}: SQS dead-lettered it before its attempts were used")
    if not queue_empty():
        stuck += 1
        problems.append("the jobs queue is not empty")
    left_schedules = one_time_schedules()
    if left_schedules:
        stuck += len(left_schedules)
        problems.append(f"{len(left_schedules)} one-time schedules never fired nor were deleted")
    workflow_errors = 0
    for flow_plan in flow_plans:
        workflow_id = flows.get(flow_plan.seq)
        workflow = store.get_workflow(workflow_id) if workflow_id else None
        members = store.get_many(flow_members.get(flow_plan.seq, []))
        wrong = check_flow(flow_plan, workflow, members, runs)
        workflow_errors += 1 if wrong else 0
        problems.extend(wrong[:3])
    for problem in problems[:20]:
        say(f"chaos: problem: {problem}")

    counts = dict(tally.counts)
    injected = [kind for kind in FAULT_KINDS if counts.get(kind, 0) > 0]
    say("chaos: faults injected (times fired):")
    for kind in FAULT_KINDS:
        extra = ""
        if kind in ("throttle", "send_failure", "batch_partial"):
            extra = f" ({counts.get(f'{kind}_past_retries', 0)} past botocore's retries)"
        say(f"  {kind:<13} {counts.get(kind, 0)}{extra}")
    fired_once = [d for d in stack.scheduler.deliveries if d.schedule.startswith("job-")]
    say(f"chaos: one-time schedules fired={len(fired_once)}, each delivered twice")
    say(
        f"chaos: poison messages sent={len(poison_bodies)} in_dlq={poison_in_dlq} "
        f"left_by_replay={poison_left}; reaper={dict(reaped)}"
    )
    return Result(
        jobs=len(by_id),
        faults=len(injected),
        lost=lost,
        duplicate_effects=duplicate_effects,
        stuck=stuck,
        dead_lettered=len(dead_lettered_ids),
        replayed=len(replayed),
        recovered=recovered,
        tally=counts,
        poison_in_dlq=poison_in_dlq,
        poison_left=poison_left,
        seconds=time.monotonic() - started,
        workflows=len(flow_plans),
        workflow_errors=workflow_errors,
    )


def _plan_faults(plan: Plan) -> str:
    shown = {k: v for k, v in plan.params.items() if k not in ("seq", "text") and v}
    flags = [name for name in ("dup_now", "dup_done", "same_key") if getattr(plan, name)]
    return ", ".join([*(f"{k}={v}" for k, v in shown.items()), *flags]) or "no faults"


def ledger_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


# --- entry point -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument(
        "--chord", type=int, default=100, help="header steps of the run's largest chord"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--function-timeout", type=int, default=6, help="worker timeout, s")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after, s")
    parser.add_argument("--keep", action="store_true", help="keep the ledger and worker logs")
    parser.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--faults", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    parser.add_argument("--events-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--throttle-every", type=int, default=THROTTLE_EVERY, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker_child:
        return worker_child(args)
    result = run(
        args.jobs,
        chord=args.chord,
        seed=args.seed,
        workers=args.workers,
        function_timeout=args.function_timeout,
        timeout=args.timeout,
        keep=args.keep,
    )
    print(result.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
