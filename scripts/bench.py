"""`make bench`: what a job costs and how fast the pipeline runs, each figure next to a baseline
measured in the same run.

    batch_submit_calls_per_job  AWS requests per job of one POST /jobs/batch of 100 jobs
    calls_per_job          billed AWS requests for one successful job (submit, worker, one status
                           read, the event source's receive/delete at the configured batch size),
                           counted with botocore event hooks
    cost_per_million_usd   from those calls, the item sizes, the measured handler durations and
                           the list prices, with 1 and with 10 status polls per job
    import_ms              median fresh-process import time of each handler, next to boto3;
                           import_library_floor_ms: the libraries each handler loads, alone
    worker_overhead_ratio  the worker's time per job vs a minimal hand-written boto3 worker that
                           makes only the two conditional writes (same backend, same jobs), split
                           into writes_ratio (jobpipe's two writes with nothing around them vs the
                           minimal's) and framework_ratio (the worker vs those bare writes)
    local_*                submit -> succeeded through the local stack over HTTP, next to the moto
                           server's own rate for the same calls

Usage: python scripts/bench.py [--jobs N] [--quick] [--out .bench/results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HANDLERS = {
    "submit": "jobpipe.handlers.submit",
    "worker": "jobpipe.handlers.worker",
    "status": "jobpipe.handlers.status",
    "cancel": "jobpipe.handlers.cancel",
}

# us-east-1 list prices (platform-facts.md).
PRICE = {
    "http_api_request": 1.00 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "sqs_request": 0.40 / 1e6,
    "ddb_write_unit": 0.625 / 1e6,
    "ddb_read_unit": 0.125 / 1e6,
    # Step Functions Standard: $0.025 per 1,000 state transitions.
    "sfn_standard_transition": 0.025 / 1e3,
}


# --- environment ----------------------------------------------------------------------------


def lambda_environment(function_name: str) -> dict[str, str]:
    """The environment a handler module is imported in on Lambda (X-Ray SDK in Lambda mode,
    tracing on), with placeholder settings; no endpoint, no credentials needed."""
    from jobpipe.settings import ENV_DLQ_URL, ENV_QUEUE_URL, ENV_TABLE_NAME
    from jobpipe.topology import TOPOLOGY

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "POWERTOOLS_", "JOBPIPE_", "_X_AMZN"))
    }
    env.update(
        {
            "LAMBDA_TASK_ROOT": tempfile.gettempdir(),
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(TOPOLOGY.worker.memory_mb),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": TOPOLOGY.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": TOPOLOGY.metrics_namespace,
            ENV_TABLE_NAME: "jobs",
            ENV_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            ENV_DLQ_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/jobs-dlq",
        }
    )
    return env


_IMPORT_PROBE = """
import importlib, json, sys, time
before = set(sys.modules)
start = time.perf_counter()
importlib.import_module(sys.argv[1])
elapsed = (time.perf_counter() - start) * 1000
packages = sorted({n.split(".")[0] for n in sys.modules})
own = sorted(n for n in sys.modules if n.startswith("jobpipe."))
# What the libraries loaded, in the order they started loading (parents first).
libraries = [n for n in sys.modules if n not in before and n.split(".")[0] != "jobpipe"]
print(json.dumps({
    "ms": elapsed, "modules": len(sys.modules), "packages": packages, "own": own,
    "libraries": libraries,
}))
"""

# The same libraries without jobpipe: the floor a handler built on them cannot go below.
_LIBRARY_PROBE = """
import importlib, json, sys, time
names = json.loads(sys.stdin.read())
start = time.perf_counter()
for name in names:
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # a lazy alias (e.g. six.moves.*) that only exists once its parent made it
print(json.dumps({"ms": (time.perf_counter() - start) * 1000}))
"""


def _probe(code: str, argv: list[str], function_name: str, stdin: str = "") -> dict[str, Any]:
    output = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", code, *argv],
        env=lambda_environment(function_name),
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def import_probe(module: str, function_name: str = "bench") -> dict[str, Any]:
    """Import `module` in a fresh interpreter with a Lambda environment."""
    return _probe(_IMPORT_PROBE, [module], function_name)


def library_probe(libraries: list[str], function_name: str = "bench") -> float:
    """Milliseconds to import `libraries` (in order) in a fresh interpreter, no jobpipe code."""
    return float(_probe(_LIBRARY_PROBE, [], function_name, json.dumps(libraries))["ms"])


def measure_imports(rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median fresh-process import time of each handler next to `import boto3`, and of the
    libraries each handler loads imported without it; interleaved round by round so that
    machine noise hits all of them alike."""
    libraries = {
        name: import_probe(module, f"jobpipe-{name}")["libraries"]
        for name, module in HANDLERS.items()
    }
    samples: dict[str, list[float]] = {"boto3": [], **{name: [] for name in HANDLERS}}
    floor: dict[str, list[float]] = {name: [] for name in HANDLERS}
    for _ in range(rounds):
        samples["boto3"].append(import_probe("boto3")["ms"])
        for name, module in HANDLERS.items():
            function = f"jobpipe-{name}"
            samples[name].append(import_probe(module, function)["ms"])
            floor[name].append(library_probe(libraries[name], function))

    def medians(values: dict[str, list[float]]) -> dict[str, float]:
        return {name: round(statistics.median(v), 1) for name, v in values.items()}

    return medians(samples), medians(floor)


# --- counting AWS calls ----------------------------------------------------------------------


@dataclass
class CallCounter:
    """Counts every API call made by the clients it is attached to (botocore `before-call`)."""

    calls: Counter[str] = field(default_factory=Counter)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        self.calls[f"{service}.{operation}"] += 1


# --- cost model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Durations:
    """Measured handler durations in milliseconds."""

    submit_ms: float
    status_ms: float
    worker_batch_ms: float
    batch_size: int


def lambda_cost(duration_ms: float, memory_mb: int) -> float:
    billed_ms = math.ceil(duration_ms)  # Lambda bills duration in 1 ms steps
    return (
        PRICE["lambda_request"]
        + billed_ms / 1000 * memory_mb / 1024 * PRICE["lambda_gb_second_arm64"]
    )


# Global secondary index writes of a successful job, billed like table writes: by_owner and
# by_time get the new job (1 each, never rewritten: their keys and projected type never change);
# by_pending gets it at submit and loses it at START (2); by_lease gets it at START and loses it
# at SUCCEED (2).
INDEX_WRITES_PER_JOB = 6


def cost_per_job(
    per_job_calls: dict[str, float], item_kb: float, durations: Durations, polls: int
) -> float:
    """USD for one job: API Gateway, the three functions, SQS and DynamoDB (on-demand)."""
    from jobpipe.topology import TOPOLOGY

    api_memory = TOPOLOGY.api.function_memory_mb
    write_units = max(1, math.ceil(item_kb))
    read_units = max(1, math.ceil(item_kb / 4))
    calls = dict(per_job_calls)
    calls.pop("dynamodb.GetItem", None)  # priced per poll below
    cost = (1 + polls) * PRICE["http_api_request"]
    cost += lambda_cost(durations.submit_ms, api_memory)
    cost += polls * lambda_cost(durations.status_ms, api_memory)
    cost += lambda_cost(durations.worker_batch_ms, TOPOLOGY.worker.memory_mb) / durations.batch_size
    for name, count in calls.items():
        service, operation = name.split(".", 1)
        if service == "sqs":
            cost += count * PRICE["sqs_request"]  # every message here is under 64 KB
        elif service == "dynamodb" and operation in {"PutItem", "UpdateItem", "DeleteItem"}:
            cost += count * write_units * PRICE["ddb_write_unit"]
    # Index entries are small: one write unit each.
    cost += INDEX_WRITES_PER_JOB * PRICE["ddb_write_unit"]
    # Status reads are strongly consistent: a full read unit per 4 KB.
    cost += polls * read_units * PRICE["ddb_read_unit"]
    return cost


def step_functions_cost_per_job(polls: int) -> float:
    """The same job as a Step Functions Standard workflow started from API Gateway: one state
    for the task plus start and end transitions, the Lambda for the work, and the same polls
    against an HTTP API + Lambda status reader."""
    transitions = 3
    return (
        transitions * PRICE["sfn_standard_transition"]
        + PRICE["http_api_request"] * (1 + polls)
        + PRICE["lambda_request"] * (1 + polls)
    )


# --- a moto server and the pipeline's resources on it ---------------------------------------


@contextlib.contextmanager
def moto_backend() -> Iterator[Any]:
    """The local stack without its worker: a moto server on a free loopback port, this
    process's boto3 pointed at it, and the jobs table, queue and DLQ from the topology."""
    from jobpipe.local.stack import LocalStack

    with LocalStack(port=0, worker=False, prefix="bench") as stack:
        yield stack.config


def submit_jobs(count: int, job_type: str = "echo") -> list[str]:
    from jobpipe import wiring
    from jobpipe.submit.service import SubmitRequest

    service = wiring.submit_service()
    return [
        service.submit(SubmitRequest("bench", job_type, {"n": n})).job.job_id for n in range(count)
    ]


def receive_batches(sqs: Any, queue_url: str, count: int, batch_size: int) -> list[list[Any]]:
    """Take `count` messages off the queue, grouped as the event source would deliver them."""
    messages: list[Any] = []
    while len(messages) < count:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=600,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        messages.extend(got)
    return [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]


class MinimalWorker:
    """The baseline: what any SQS worker must do per job with plain boto3 — claim the job with
    one conditional write, run it, record the result with another — and nothing else."""

    def __init__(self, table_name: str) -> None:
        import boto3

        self._ddb = boto3.client("dynamodb")
        self._table = table_name

    def handler(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            try:
                body = json.loads(record["body"])
                key = {"pk": {"S": body["job_id"]}}
                now = str(int(time.time() * 1000))
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=(
                        "SET #s = :running, attempts = attempts + :one, updated_at = :now"
                    ),
                    ConditionExpression="#s = :pending",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":running": {"S": "running"},
                        ":pending": {"S": "pending"},
                        ":one": {"N": "1"},
                        ":now": {"N": now},
                    },
                )
                result = json.dumps(body["params"])
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #s = :done, #r = :result, updated_at = :now",
                    ConditionExpression="#s = :running",
                    ExpressionAttributeNames={"#s": "status", "#r": "result"},
                    ExpressionAttributeValues={
                        ":done": {"S": "succeeded"},
                        ":running": {"S": "running"},
                        ":result": {"S": result},
                        ":now": {"N": now},
                    },
                )
            except Exception:  # noqa: BLE001
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}


class StoreOnlyWorker:
    """jobpipe's own two writes — its job store's START and SUCCEED, conditions and all — with
    nothing around them: no batch processor, idempotency layer, logging or metrics. Next to the
    minimal worker it prices the guarantees those writes carry; next to the real worker, the
    framework."""

    def __init__(self, table_name: str) -> None:
        from jobpipe.adapters.dynamodb import DynamoDBJobStore

        self._store = DynamoDBJobStore(table_name)

    def handler(self, event: dict[str, Any], _context: Any) -> dict[str, Any]:
        from jobpipe.domain.job import JobMessage, fingerprint, payload_of, stored_json
        from jobpipe.domain.states import START, SUCCEED

        failures = []
        for record in event["Records"]:
            try:
                message = JobMessage.from_body(record["body"])
                now = int(time.time() * 1000)
                running = self._store.apply(
                    START,
                    message.job_id,
                    payload_hash=fingerprint(payload_of(message.type, message.params)),
                    lease=now + 60_000,
                    now=now,
                    due=now,
                )
                self._store.apply(
                    SUCCEED,
                    running,
                    attempt=running.attempts,
                    result=stored_json(message.params),
                    progress=None,
                    now=now,
                )
            except Exception:  # noqa: BLE001
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}


def time_batches(
    handler: Callable[[dict[str, Any], Any], Any], batches: list[list[Any]], queue_arn: str
) -> float:
    """Seconds spent in `handler` over all batches (log output swallowed, not skipped)."""
    from jobpipe.local.event_source import LambdaContext, sqs_event
    from jobpipe.topology import TOPOLOGY

    events = [sqs_event(batch, queue_arn, "us-east-1") for batch in batches]
    sink = io.StringIO()
    elapsed = 0.0
    for event in events:
        context = LambdaContext("jobpipe-worker", TOPOLOGY.worker.timeout_seconds)
        with contextlib.redirect_stdout(sink):
            start = time.perf_counter()
            response = handler(event, context)
            elapsed += time.perf_counter() - start
        if response and response.get("batchItemFailures"):
            raise RuntimeError(f"benchmark jobs failed: {response}")
        sink.seek(0)
        sink.truncate()
    return elapsed


def measure_worker_overhead(jobs_per_round: int, rounds: int) -> dict[str, float]:
    """jobpipe's worker vs the minimal worker (and jobpipe's bare writes between them),
    interleaved round by round on fresh jobs."""
    import boto3

    from jobpipe.handlers import worker as worker_handler
    from jobpipe.topology import TOPOLOGY

    batch_size = TOPOLOGY.worker.batch_size
    ours: list[float] = []
    bare: list[float] = []
    baseline: list[float] = []
    with moto_backend() as resources:
        sqs = boto3.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        minimal = MinimalWorker(resources.table_name)
        store_only = StoreOnlyWorker(resources.table_name)
        # Warm every path (clients, models, first-call caches) before measuring.
        for handler in (worker_handler.handler, store_only.handler, minimal.handler):
            submit_jobs(batch_size)
            time_batches(
                handler, receive_batches(sqs, resources.queue_url, batch_size, batch_size), arn
            )
        for _ in range(rounds):
            for handler, samples in (
                (worker_handler.handler, ours),
                (store_only.handler, bare),
                (minimal.handler, baseline),
            ):
                submit_jobs(jobs_per_round)
                batches = receive_batches(sqs, resources.queue_url, jobs_per_round, batch_size)
                samples.append(time_batches(handler, batches, arn) / jobs_per_round)
    ours_ms = statistics.median(ours) * 1000
    bare_ms = statistics.median(bare) * 1000
    baseline_ms = statistics.median(baseline) * 1000
    return {
        "worker_ms_per_job": round(ours_ms, 3),
        "store_only_worker_ms_per_job": round(bare_ms, 3),
        "minimal_worker_ms_per_job": round(baseline_ms, 3),
        "worker_overhead_ratio": round(ours_ms / baseline_ms, 3),
        "writes_ratio": round(bare_ms / baseline_ms, 3),
        "framework_ratio": round(ours_ms / bare_ms, 3),
    }


# --- the local stack, end to end -------------------------------------------------------------


@dataclass
class Timings:
    """Wall time spent inside each handler (instrumentation around the real handlers)."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def wrap(self, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        bucket = self.samples.setdefault(name, [])

        def timed(event: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                bucket.append((time.perf_counter() - start) * 1000)

        return timed

    def median(self, name: str) -> float:
        return statistics.median(self.samples.get(name) or [0.0])


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310  (loopback)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _iso_ms(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def measure_local(jobs: int, clients: int) -> dict[str, Any]:
    """`jobs` echo jobs submitted over HTTP by `clients` threads to the local stack; the worker
    runs through the event-source harness. Returns throughput, latency, the AWS calls each job
    made, and the handler durations."""
    from concurrent.futures import ThreadPoolExecutor

    from jobpipe.adapters import clients as aws_clients
    from jobpipe.handlers import status, submit, worker
    from jobpipe.local.stack import LocalStack
    from jobpipe.topology import TOPOLOGY

    timings = Timings()
    originals = (submit.handler, status.handler, worker.handler)
    submit.handler = timings.wrap("submit", submit.handler)
    status.handler = timings.wrap("status", status.handler)
    worker.handler = timings.wrap("worker", worker.handler)
    counter = CallCounter()
    try:
        with LocalStack(port=0, poll_wait_seconds=1, in_process_worker=True) as stack:
            assert stack.esm is not None
            for client in (aws_clients.dynamodb(), aws_clients.sqs()):
                counter.attach(client)
            url = stack.api_url
            sent: dict[str, float] = {}

            def submit_one(n: int) -> None:
                started = time.time() * 1000
                answer = _http("POST", f"{url}/jobs", {"type": "echo", "params": {"n": n}})
                sent[answer["job_id"]] = started

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(submit_one, range(jobs)))
            while stack.esm.stats.deleted < jobs:
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
            # One status read per job, after the fact (not part of the throughput).
            views = [_http("GET", f"{url}/jobs/{job_id}") for job_id in sent]
    finally:
        submit.handler, status.handler, worker.handler = originals
    if any(view["status"] != "succeeded" for view in views):
        raise RuntimeError("benchmark jobs did not all succeed")
    latencies = sorted(_iso_ms(view["completed_at"]) - sent[view["job_id"]] for view in views)
    batch_size = TOPOLOGY.worker.batch_size
    per_job = {name: count / jobs for name, count in counter.calls.items()}
    # The event source: one ReceiveMessage and one DeleteMessageBatch per full batch.
    per_job["sqs.ReceiveMessage"] = per_job.get("sqs.ReceiveMessage", 0.0) + 1 / batch_size
    per_job["sqs.DeleteMessageBatch"] = per_job.get("sqs.DeleteMessageBatch", 0.0) + 1 / batch_size
    worker_batches = len(timings.samples.get("worker", []))
    return {
        "jobs": jobs,
        "local_throughput_jobs_per_s": round(jobs / elapsed, 1),
        "local_latency_p50_ms": round(latencies[len(latencies) // 2], 1),
        "local_latency_p99_ms": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1
        ),
        "calls_per_job": round(sum(per_job.values()), 3),
        "calls_breakdown": {name: round(value, 3) for name, value in sorted(per_job.items())},
        "durations": Durations(
            submit_ms=timings.median("submit"),
            status_ms=timings.median("status"),
            worker_batch_ms=(sum(timings.samples.get("worker", [])) / max(1, worker_batches)),
            batch_size=max(1, round(jobs / max(1, worker_batches))),
        ),
    }


BATCH_JOBS = 100


def measure_batch_submit() -> dict[str, Any]:
    """AWS requests per job of one `POST /jobs/batch` of 100 new jobs over HTTP on the local
    stack (no worker): BatchWriteItem takes 25 puts, SendMessageBatch 10 messages."""
    from jobpipe.adapters import clients as aws_clients
    from jobpipe.local.stack import LocalStack

    counter = CallCounter()
    with LocalStack(port=0, worker=False, prefix="bench-batch") as stack:
        for client in (aws_clients.dynamodb(), aws_clients.sqs()):
            counter.attach(client)
        jobs = [{"type": "echo", "params": {"n": n}} for n in range(BATCH_JOBS)]
        answer = _http("POST", f"{stack.api_url}/jobs/batch", {"jobs": jobs})
    if [r["status"] for r in answer["results"]] != [202] * BATCH_JOBS:
        raise RuntimeError("benchmark batch was not all accepted")
    per_job = {name: count / BATCH_JOBS for name, count in counter.calls.items()}
    return {
        "batch_submit_calls_per_job": round(sum(per_job.values()), 3),
        "batch_submit_breakdown": {name: round(v, 3) for name, v in sorted(per_job.items())},
    }


def measure_moto_rate(calls: int, threads: int) -> float:
    """The moto server's own rate, from plain boto3 in this process, for the calls a job makes:
    PutItem, SendMessage, 2 x UpdateItem, GetItem, and a ReceiveMessage + DeleteMessageBatch."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    with moto_backend() as resources:
        ddb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        table, queue = resources.table_name, resources.queue_url

        def one_job(n: int) -> int:
            key = {"pk": {"S": f"bench-{n}"}}
            ddb.put_item(
                TableName=table,
                Item={**key, "status": {"S": "pending"}, "owner": {"S": "bench"}},
                ConditionExpression="attribute_not_exists(pk)",
            )
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"job_id": f"bench-{n}"}))
            for status in ("running", "succeeded"):
                ddb.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET #s = :s",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": status}},
                )
            ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
            made = 5
            if n % 10 == 0:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
                    "Messages", []
                )
                made += 1
                if got:
                    sqs.delete_message_batch(
                        QueueUrl=queue,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(got)
                        ],
                    )
                    made += 1
            return made

        jobs = max(1, calls // 5)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            made = sum(pool.map(one_job, range(jobs)))
        return made / (time.perf_counter() - start)


# --- the run -----------------------------------------------------------------------------------

TARGETS = {
    "calls_per_job": ("<=", 6.5),
    "import_ratio": ("<=", 1.6),
    "worker_overhead_ratio": ("<=", 1.3),
    "local_efficiency": (">=", 0.6),
}


def quiet_logs() -> None:
    """Log lines are still formatted (they cost what they cost on Lambda), then discarded."""
    import logging

    from jobpipe.topology import TOPOLOGY

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sink = Path(os.devnull).open("w")  # noqa: SIM115  (lives as long as the process)
    for handler in logging.getLogger(TOPOLOGY.service_name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def machine() -> str:
    import platform

    cpus = os.cpu_count() or 0
    python = platform.python_version()
    return f"{platform.machine()}, {cpus} CPUs, Python {python}, {platform.system()}"


def run(jobs: int, import_rounds: int, overhead_rounds: int, clients: int) -> dict[str, Any]:
    from jobpipe.observability import logger  # noqa: F401  (the logger whose output we discard)

    quiet_logs()
    results: dict[str, Any] = {"machine": machine()}
    local = measure_local(jobs, clients)
    durations: Durations = local.pop("durations")
    results.update(local)
    results.update(measure_batch_submit())
    moto_rate = measure_moto_rate(calls=max(500, jobs * 3), threads=clients)
    results["moto_calls_per_s"] = round(moto_rate, 1)
    results["local_efficiency"] = round(
        results["local_throughput_jobs_per_s"] * results["calls_per_job"] / moto_rate, 3
    )
    results.update(measure_worker_overhead(jobs_per_round=100, rounds=overhead_rounds))
    imports, floor = measure_imports(import_rounds)
    results["import_ms"] = imports
    results["import_ratio"] = round(max(imports[h] for h in HANDLERS) / imports["boto3"], 3)
    results["import_library_floor_ms"] = floor
    results["import_library_floor_ratio"] = round(max(floor.values()) / imports["boto3"], 3)
    item_kb = 0.5  # an echo job's item, params and result included, is well under 1 KB
    breakdown = results["calls_breakdown"]
    results["handler_ms"] = {
        "submit": round(durations.submit_ms, 2),
        "status": round(durations.status_ms, 2),
        "worker_per_job": round(durations.worker_batch_ms / durations.batch_size, 2),
    }
    results["cost_per_million_usd"] = round(cost_per_job(breakdown, item_kb, durations, 1) * 1e6, 2)
    results["cost_per_million_usd_10_polls"] = round(
        cost_per_job(breakdown, item_kb, durations, 10) * 1e6, 2
    )
    results["step_functions_standard_per_million_usd"] = round(
        step_functions_cost_per_job(1) * 1e6, 2
    )
    results["targets"] = {
        name: {
            "value": results[name],
            "target": f"{op} {limit}",
            "met": _met(results[name], op, limit),
        }
        for name, (op, limit) in TARGETS.items()
    }
    return results


def _met(value: float, op: str, limit: float) -> bool:
    return value <= limit if op == "<=" else value >= limit


def table(results: dict[str, Any]) -> str:
    rows = [
        ("calls_per_job", results["calls_per_job"], "<= 6.5"),
        ("batch_submit_calls_per_job (100 a batch)", results["batch_submit_calls_per_job"], ""),
        ("cost_per_million_usd (1 poll)", results["cost_per_million_usd"], ""),
        ("cost_per_million_usd (10 polls)", results["cost_per_million_usd_10_polls"], ""),
        (
            "step functions standard (1 poll)",
            results["step_functions_standard_per_million_usd"],
            "",
        ),
        *((f"import_ms.{name}", value, "") for name, value in results["import_ms"].items()),
        ("import_ratio (slowest / boto3)", results["import_ratio"], "<= 1.6"),
        *(
            (f"import_library_floor_ms.{name}", value, "")
            for name, value in results["import_library_floor_ms"].items()
        ),
        ("import_library_floor_ratio", results["import_library_floor_ratio"], ""),
        ("worker_ms_per_job", results["worker_ms_per_job"], ""),
        ("store_only_worker_ms_per_job", results["store_only_worker_ms_per_job"], ""),
        ("minimal_worker_ms_per_job", results["minimal_worker_ms_per_job"], ""),
        ("worker_overhead_ratio", results["worker_overhead_ratio"], "<= 1.3"),
        ("writes_ratio (bare writes / minimal)", results["writes_ratio"], ""),
        ("framework_ratio (worker / bare writes)", results["framework_ratio"], ""),
        ("local_throughput_jobs_per_s", results["local_throughput_jobs_per_s"], ""),
        ("local_latency_p50_ms", results["local_latency_p50_ms"], ""),
        ("local_latency_p99_ms", results["local_latency_p99_ms"], ""),
        ("moto_calls_per_s", results["moto_calls_per_s"], ""),
        ("local_efficiency", results["local_efficiency"], ">= 0.6"),
    ]
    met = {name: spec["met"] for name, spec in results["targets"].items()}
    lines = [f"{'metric':<42} {'value':>12}  target", "-" * 66]
    for name, value, target in rows:
        key = name.split(" ")[0]
        verdict = ("  met" if met.get(key) else "  MISSED") if target else ""
        lines.append(f"{name:<42} {value:>12}  {target}{verdict}")
    breakdown = ", ".join(f"{k} {v}" for k, v in results["calls_breakdown"].items())
    lines.append(f"calls_breakdown: {breakdown}")
    lines.append(f"machine: {results['machine']}; jobs: {results['jobs']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="echo jobs through the local stack")
    parser.add_argument("--quick", action="store_true", help="a small run (CI)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--verbose", action="store_true", help="show the pipeline's own output")
    parser.add_argument("--out", type=Path, default=Path(".bench/results.json"))
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr if args.verbose else io.StringIO()):
        results = _run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}")
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    # The local stack's API threads flush Powertools metrics that the worker thread records.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if args.quick:
        return run(jobs=min(args.jobs, 60), import_rounds=3, overhead_rounds=2, clients=2)
    return run(jobs=args.jobs, import_rounds=11, overhead_rounds=7, clients=args.clients)


if __name__ == "__main__":
    raise SystemExit(main())
