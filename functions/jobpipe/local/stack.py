"""The whole pipeline on one machine: a moto server (SQS, DynamoDB, CloudWatch, EventBridge
Scheduler), the queues and table created from the topology, the local API gateway in front of
the real API handlers, worker processes (two by default) each running the event-source harness
over the real worker handler — as Lambda runs each invocation in an environment of its own —,
the stuck-job reaper on an interval, and a scheduler thread that fires the schedule group's
one-time and recurring schedules (moto never fires them) every second.

Every boto3 client talks to the moto server: the stack sets `AWS_ENDPOINT_URL`, a region and
dummy credentials in the environment before any client is created (the worker processes inherit
it), and puts the previous values back when it stops. So only one stack runs per process at a
time. The worker processes load the job types the environment names (`JOBPIPE_JOB_TYPES`).

    with LocalStack(port=0) as stack:
        requests.post(f"{stack.api_url}/jobs", ...)
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jobpipe.api.identity import LOCAL_PRINCIPAL
from jobpipe.local.address import DEFAULT_PORT, LOOPBACK
from jobpipe.local.address import LocalConfig as LocalConfig
from jobpipe.local.console import ENV_CONSOLE
from jobpipe.local.gateway import LOCAL_CONFIG_PATH, Gateway
from jobpipe.local.resources import LOCAL_ACCOUNT
from jobpipe.settings import ENV_LOCAL_PRINCIPAL
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

    from jobpipe.local.event_source import EventSourceMapping
    from jobpipe.local.scheduler import LocalScheduler
    from jobpipe.reaper.service import Reaper

DEFAULT_REGION = "us-east-1"
DEFAULT_WORKERS = 2
# SQS publishes its metrics every minute; the local stack, with its faster reaper, more often.
QUEUE_METRICS_INTERVAL_SECONDS = 2.0
# EventBridge Scheduler fires within a minute of a schedule's time; the local one looks every
# second.
SCHEDULER_INTERVAL_SECONDS = 1.0
_log = logging.getLogger(__name__)

# What the stack puts in the environment (and takes back out when it stops).
_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SCHEDULER",
)


class LocalStack:
    """Start with `start()` (or `with`), stop with `stop()`; `port=0` picks a free port."""

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = DEFAULT_PORT,
        moto_port: int = 0,
        region: str = DEFAULT_REGION,
        prefix: str = "jobpipe",
        worker: bool = True,
        workers: int = DEFAULT_WORKERS,
        in_process_worker: bool = False,
        poll_wait_seconds: int = 1,
        reaper_interval_seconds: float | None = None,
        console: bool = False,
        scheduler_interval_seconds: float = SCHEDULER_INTERVAL_SECONDS,
        scheduler_clock: Callable[[], float] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.moto_port = moto_port
        self.region = region
        self.prefix = prefix
        self.run_worker = worker
        # Worker processes, each polling the queue as an event source mapping's poller does.
        # `in_process_worker`: one poller thread in this process instead (the benchmark counts
        # its AWS calls there).
        self.workers = workers
        self.in_process_worker = in_process_worker
        self.console = console
        self.poll_wait_seconds = poll_wait_seconds
        # The reaper runs beside the worker, every this many seconds (0: not at all).
        self.reaper_interval_seconds = (
            TOPOLOGY.reaper.local_interval_seconds
            if reaper_interval_seconds is None
            else reaper_interval_seconds
        )
        self.reaper: Reaper | None = None
        self.reaper_runs = 0
        # The scheduler fires due schedules every this many seconds (0: only when `tick()` is
        # called), on `scheduler_clock` (tests move their own).
        self.scheduler_interval_seconds = scheduler_interval_seconds
        self._scheduler_clock = scheduler_clock
        self.scheduler: LocalScheduler | None = None
        self.esm: EventSourceMapping | None = None
        self._config: LocalConfig | None = None
        self._moto: Any = None
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._saved_env: dict[str, str | None] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer
        from werkzeug.serving import make_server

        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()
        try:
            _, moto_port = self._moto.get_host_and_port()
            endpoint = f"http://{self.host}:{moto_port}"
            # moto keeps its state per process: start from nothing, not from an earlier stack's.
            _reset_moto(endpoint)
            self._point_aws_at(endpoint)
            resources = self._create_resources()
            # A request without credentials is the one local caller's (on AWS it is refused).
            self._set_env({**resources.environment(), ENV_LOCAL_PRINCIPAL: LOCAL_PRINCIPAL})
            self._reset_wiring()

            gateway = Gateway(local_config=self._local, ui=self._dashboard(resources))
            self._server = make_server(self.host, self.port, gateway)
            self.port = self._server.server_port
            self._config = LocalConfig(
                api_url=f"http://{self.host}:{self.port}",
                aws_endpoint_url=endpoint,
                region=self.region,
                table_name=resources.table_name,
                queue_url=resources.queue_url,
                dlq_url=resources.dlq_url,
                schedule_group=resources.schedule_group,
            )
            self.scheduler = self._build_scheduler(resources)
            self._spawn("jobpipe-gateway", self._server.serve_forever)
            # moto publishes no SQS metrics: the reaper reads the queue's age from this.
            self._spawn("jobpipe-queue-metrics", self._publish_queue_metrics)
            if self.run_worker:
                if self.in_process_worker:
                    self.esm = self._event_source(resources.queue_url)
                    self._spawn("jobpipe-worker", self._poll)
                else:
                    self._start_workers()
                if self.reaper_interval_seconds > 0:
                    self.reaper = self._build_reaper(resources)
                    self._spawn("jobpipe-reaper", self._reap)
            if self.scheduler_interval_seconds > 0:
                self._spawn("jobpipe-scheduler", self._schedule)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker (after its current batch), the reaper, the gateway and moto; restore the
        environment. Safe to call twice."""
        self._stop.set()
        self._stop_workers(timeout)
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._server is not None:
            self._server.server_close()
            self._server = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._restore_env()
        self._reset_wiring()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what callers read ----------------------------------------------------------------------

    @property
    def config(self) -> LocalConfig:
        if self._config is None:
            raise RuntimeError("the local stack is not started")
        return self._config

    @property
    def api_url(self) -> str:
        return self.config.api_url

    @property
    def config_url(self) -> str:
        return f"{self.api_url}{LOCAL_CONFIG_PATH}"

    # --- parts ----------------------------------------------------------------------------------

    def _local(self) -> dict[str, Any]:
        return self.config.to_dict()

    def _dashboard(self, resources: Any) -> Any:
        """The operator's dashboard over this stack's table and queues."""
        from jobpipe.adapters.dynamodb import DynamoDBJobStore
        from jobpipe.ops.dashboard.app import Dashboard
        from jobpipe.ops.dlq import DeadLetterQueue

        store = DynamoDBJobStore(resources.table_name)

        def dead_letters() -> DeadLetterQueue:
            import boto3

            return DeadLetterQueue.on_sqs(
                boto3.client("sqs"),
                store,
                dlq_url=resources.dlq_url,
                queue_url=resources.queue_url,
                wait_seconds=0,
            )

        return Dashboard(store, dead_letters, stack_name=f"local ({self.prefix})")

    def _point_aws_at(self, endpoint: str) -> None:
        for name in _CLEARED:
            self._set_env({name: None})
        self._set_env(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                # moto accepts any credentials; dummy ones keep real ones out of reach.
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
            }
        )
        self._reset_wiring()

    def _create_resources(self) -> Any:
        import boto3

        from jobpipe.local.resources import create_resources

        # Clients of its own: the functions' are tuned for quick item requests, not for
        # creating a table.
        return create_resources(
            boto3.client("dynamodb"),
            boto3.client("sqs"),
            prefix=self.prefix,
            scheduler=boto3.client("scheduler"),
        )

    def _build_scheduler(self, resources: Any) -> LocalScheduler:
        """The recurring schedules the job types declare, created as the CDK app deploys them
        (paused ones as `JOBPIPE_PAUSED_SCHEDULES` names), and the scheduler that fires them."""
        import boto3

        from jobpipe import wiring
        from jobpipe.api.routes import function
        from jobpipe.domain.schedule import ENV_PAUSED, definition, paused_names
        from jobpipe.local.scheduler import LocalScheduler, create_recurring

        client = boto3.client("scheduler")
        schedules = wiring.load_job_types().schedules
        paused = paused_names(os.environ.get(ENV_PAUSED), schedules)
        recurring = function("Recurring").local_name
        create_recurring(
            client,
            resources.schedule_group,
            [definition(s, paused=s.name in paused) for s in schedules.values()],
            function_arn=f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT}:function:{recurring}",
            role_arn=resources.scheduler_role_arn,
        )
        return LocalScheduler(
            client,
            boto3.client("sqs"),
            resources.schedule_group,
            _invoke_function,
            clock=self._scheduler_clock or time.time,
        )

    def _schedule(self) -> None:
        assert self.scheduler is not None
        while not self._stop.wait(self.scheduler_interval_seconds):
            try:
                self.scheduler.tick()
            except Exception:  # noqa: BLE001  (a failed tick must not end the scheduler)
                if self._stop.is_set():
                    return
                _log.exception("scheduler tick failed; trying again")

    def _event_source(self, queue_url: str) -> EventSourceMapping:
        import boto3

        from jobpipe.handlers import worker
        from jobpipe.local.event_source import EventSourceMapping

        return EventSourceMapping(
            boto3.client("sqs", region_name=self.region),
            queue_url,
            worker.handler,
            region=self.region,
            poll_wait_seconds=self.poll_wait_seconds,
        )

    def _start_workers(self) -> None:
        for number in range(1, self.workers + 1):
            env = dict(os.environ)
            if self.console:
                env[ENV_CONSOLE] = "1"
            self._processes.append(
                subprocess.Popen(  # noqa: S603  (this package's own module, our arguments)
                    [
                        sys.executable,
                        "-m",
                        "jobpipe.local.worker_process",
                        "--poll-wait",
                        str(self.poll_wait_seconds),
                        "--name",
                        f"jobpipe-worker-{number}",
                    ],
                    env=env,
                )
            )

    def _stop_workers(self, timeout: float) -> None:
        """Each worker finishes its batch, then exits; one that does not in time is killed."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def _poll(self) -> None:
        assert self.esm is not None
        while not self._stop.is_set():
            try:
                self.esm.poll_once()
            except Exception:  # noqa: BLE001  (a failed poll must not end the worker)
                if self._stop.is_set():
                    return
                _log.exception("worker poll failed; polling again")
                self._stop.wait(1.0)

    def _build_reaper(self, resources: Any) -> Reaper:
        # Its own clients, as a separate function has on AWS (and out of the counts `make bench`
        # takes on the shared ones).
        import boto3

        from jobpipe import wiring
        from jobpipe.adapters.dynamodb import DynamoDBJobStore
        from jobpipe.adapters.sqs import SQSJobQueue

        return wiring.build_reaper(
            DynamoDBJobStore(resources.table_name, boto3.client("dynamodb")),
            SQSJobQueue(resources.queue_url, resources.dlq_url, boto3.client("sqs")),
        )

    def _reap(self) -> None:
        assert self.reaper is not None
        while not self._stop.wait(self.reaper_interval_seconds):
            try:
                self.reaper.run()
                self.reaper_runs += 1
            except Exception:  # noqa: BLE001  (a failed run must not end the reaper)
                if self._stop.is_set():
                    return
                _log.exception("reaper run failed; running again at the next interval")

    def _publish_queue_metrics(self) -> None:
        import boto3

        from jobpipe.local.queue_metrics import publish

        cloudwatch = boto3.client("cloudwatch", region_name=self.region)
        while not self._stop.wait(QUEUE_METRICS_INTERVAL_SECONDS):
            try:
                publish(cloudwatch, self.config.queue_url, self.region)
            except Exception:  # noqa: BLE001  (a failed publish must not end the thread)
                if self._stop.is_set():
                    return
                _log.exception("publishing the queue's metrics failed; trying again")

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _set_env(self, values: dict[str, str | None]) -> None:
        for name, value in values.items():
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    @staticmethod
    def _reset_wiring() -> None:
        from jobpipe import wiring

        wiring.reset()


def _invoke_function(arn: str, event: dict[str, Any]) -> Any:
    """Call a function of the stack (`jobpipe.api.routes`) by its local ARN, as Lambda would."""
    import importlib

    from jobpipe.api.routes import FUNCTIONS
    from jobpipe.local.event_source import LambdaContext

    name = arn.rsplit(":", 1)[-1]
    spec = next((f for f in FUNCTIONS if f.local_name == name), None)
    if spec is None:
        raise LookupError(f"no function {name} in this stack")
    handler = importlib.import_module(spec.module).handler
    return handler(event, LambdaContext(name, TOPOLOGY.api.function_timeout_seconds))


def _reset_moto(endpoint: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310  (our own loopback server)
        pass
