"""A Python client for the jobs API: submit a job or a workflow, read it, wait for it.

    client = JobsClient("http://127.0.0.1:8000")                     # the local stack
    client = JobsClient(api_url, signer=SigV4Signer.from_session())   # the deployed stack (IAM)
    job = client.wait(client.submit("echo", {"hello": "world"}).job_id, timeout=60)
    flow = client.submit_workflow(chain(step("echo", {"n": 1}), step("echo")))
    answers = client.submit_many([BatchJob("echo", {"n": n}) for n in range(250)])
    for page in client.list(status="failed"): ...

Requests to AWS are signed with SigV4 by botocore from the caller's credentials. HTTP is the
standard library's `urllib`; nothing else is needed beyond what the functions already use.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from jobpipe.api.routes import route
from jobpipe.errors import JobError

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 300.0
USER_AGENT = "jobpipe-client/0.1"
# POST /jobs/batch takes at most this many jobs.
MAX_BATCH_JOBS = 100


# --- errors ------------------------------------------------------------------------------------


class ClientError(JobError):
    """Root of the client's errors."""


class ApiError(ClientError):
    """The API answered with an error status."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.body = body
        self.retry_after = retry_after

    @property
    def is_not_found(self) -> bool:
        return self.status == 404


class ConnectionFailedError(ClientError):
    """The API could not be reached (wrong URL, nothing listening, DNS, TLS)."""


class CredentialsError(ClientError):
    """No AWS credentials to sign requests with."""


class WaitTimeoutError(ClientError):
    """The job (or workflow) was not terminal when the wait's time ran out."""

    def __init__(self, job: JobInfo | WorkflowInfo, timeout: float) -> None:
        what = f"job {job.job_id}" if isinstance(job, JobInfo) else f"workflow {job.workflow_id}"
        super().__init__(f"{what} is still {job.status} after {timeout:g} s")
        self.job = job
        self.timeout = timeout


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    type: str
    status: str
    created_at: str
    poll_url: str
    location: str | None = None
    # When a delayed job (status `scheduled`) is due to run.
    run_at: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], location: str | None) -> SubmittedJob:
        return cls(
            job_id=str(body["job_id"]),
            type=str(body["type"]),
            status=str(body["status"]),
            created_at=str(body["created_at"]),
            poll_url=str(body.get("poll_url", "")),
            location=location,
            run_at=body.get("run_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        shown = {
            "job_id": self.job_id,
            "type": self.type,
            "status": self.status,
            "created_at": self.created_at,
            "poll_url": self.poll_url,
        }
        if self.run_at is not None:
            shown["run_at"] = self.run_at
        return shown


@dataclass(frozen=True)
class JobFailure:
    type: str
    message: str


@dataclass(frozen=True)
class AttemptFailure:
    attempt: int
    type: str
    message: str
    at: str


@dataclass(frozen=True)
class JobProgress:
    current: float
    total: float | None
    message: str | None
    at: str

    @property
    def fraction(self) -> float | None:
        """How far along, 0 to 1, when the job gave a total."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))


@dataclass(frozen=True)
class JobInfo:
    """A job as `GET /jobs/{id}` shows it."""

    job_id: str
    type: str
    status: str
    attempts: int
    max_attempts: int
    created_at: str
    started_at: str | None
    completed_at: str | None
    next_attempt_at: str | None
    is_terminal: bool
    dead_lettered: bool
    replays: int = 0
    cancel_requested: bool = False
    progress: JobProgress | None = None
    errors: tuple[AttemptFailure, ...] = ()
    result: Any = None
    error: JobFailure | None = None
    # The workflow the job is a step of.
    workflow_id: str | None = None
    # When a delayed job was due to run (it is `scheduled` until then).
    run_at: str | None = None
    # Seconds the API asked the client to wait before polling again (None once terminal).
    retry_after: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @classmethod
    def from_body(cls, body: Mapping[str, Any], retry_after: float | None = None) -> JobInfo:
        error = body.get("error")
        progress = body.get("progress")
        return cls(
            job_id=str(body["job_id"]),
            type=str(body["type"]),
            status=str(body["status"]),
            attempts=int(body.get("attempts", 0)),
            max_attempts=int(body.get("max_attempts", 0)),
            created_at=str(body.get("created_at", "")),
            started_at=body.get("started_at"),
            completed_at=body.get("completed_at"),
            next_attempt_at=body.get("next_attempt_at"),
            is_terminal=bool(body.get("is_terminal", False)),
            dead_lettered=bool(body.get("dead_lettered", False)),
            replays=int(body.get("replays", 0)),
            cancel_requested=bool(body.get("cancel_requested", False)),
            progress=JobProgress(
                current=progress["current"],
                total=progress.get("total"),
                message=progress.get("message"),
                at=str(progress.get("at", "")),
            )
            if isinstance(progress, Mapping)
            else None,
            errors=tuple(
                AttemptFailure(
                    int(e.get("attempt", 0)),
                    str(e.get("type", "")),
                    str(e.get("message", "")),
                    str(e.get("at", "")),
                )
                for e in body.get("errors") or []
                if isinstance(e, Mapping)
            ),
            result=body.get("result"),
            run_at=body.get("run_at"),
            error=(
                JobFailure(str(error.get("type", "")), str(error.get("message", "")))
                if isinstance(error, Mapping)
                else None
            ),
            workflow_id=body.get("workflow_id"),
            retry_after=retry_after,
            raw=dict(body),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


# --- workflows -----------------------------------------------------------------------------------

Tree = dict[str, Any]
"""A workflow tree as the API takes it: build it with `step`, `chain`, `group` and `chord`."""


def step(job_type: str, params: Mapping[str, Any] | None = None) -> Tree:
    """One job of a workflow. A step after others receives their result under `params.input`."""
    return {"type": job_type, "params": dict(params or {})}


def chain(*nodes: Tree) -> Tree:
    """Nodes one after another; each receives the previous one's result (Celery's `chain`)."""
    return {"chain": list(nodes)}


def group(*nodes: Tree, continue_on_failure: bool = False) -> Tree:
    """Nodes at once; the group's result is their results, in order (Celery's `group`)."""
    tree: Tree = {"group": list(nodes)}
    if continue_on_failure:
        tree["continue_on_failure"] = True
    return tree


def chord(header: list[Tree], body: Tree, *, continue_on_failure: bool = False) -> Tree:
    """The header's nodes at once, then the body with their results (Celery's `chord`)."""
    tree: Tree = {"chord": {"header": list(header), "body": body}}
    if continue_on_failure:
        tree["continue_on_failure"] = True
    return tree


@dataclass(frozen=True)
class WorkflowNode:
    """A node of a workflow as `GET /workflows/{id}` shows it: a step (with its job) or a
    chain, group or chord of nodes (a chord's header is `nodes`, its body `body`)."""

    kind: str
    path: str
    status: str
    job_id: str | None = None
    type: str | None = None
    nodes: tuple[WorkflowNode, ...] = ()
    body: WorkflowNode | None = None
    continue_on_failure: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> WorkflowNode:
        inner = body.get("body")
        return cls(
            kind=str(body["kind"]),
            path=str(body.get("path", "")),
            status=str(body["status"]),
            job_id=body.get("job_id"),
            type=body.get("type"),
            nodes=tuple(
                cls.from_body(n) for n in body.get("nodes") or [] if isinstance(n, Mapping)
            ),
            body=cls.from_body(inner) if isinstance(inner, Mapping) else None,
            continue_on_failure=bool(body.get("continue_on_failure", False)),
        )

    def steps(self) -> list[WorkflowNode]:
        """Its steps, in the tree's order."""
        if self.kind == "step":
            return [self]
        inner = [self.body] if self.body is not None else []
        return [s for node in (*self.nodes, *inner) for s in node.steps()]


@dataclass(frozen=True)
class WorkflowFailure:
    type: str
    message: str
    job_id: str
    path: str


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow as `GET /workflows/{id}` shows it."""

    workflow_id: str
    status: str
    members: int
    created_at: str
    completed_at: str | None
    is_terminal: bool
    tree: WorkflowNode
    result: Any = None
    result_omitted: str | None = None
    error: WorkflowFailure | None = None
    # In the answer to a submit: where to poll it.
    poll_url: str | None = None
    retry_after: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @classmethod
    def from_body(cls, body: Mapping[str, Any], retry_after: float | None = None) -> WorkflowInfo:
        error = body.get("error")
        return cls(
            workflow_id=str(body["workflow_id"]),
            status=str(body["status"]),
            members=int(body.get("members", 0)),
            created_at=str(body.get("created_at", "")),
            completed_at=body.get("completed_at"),
            is_terminal=bool(body.get("is_terminal", False)),
            tree=WorkflowNode.from_body(body["tree"]),
            result=body.get("result"),
            result_omitted=body.get("result_omitted"),
            error=WorkflowFailure(
                str(error.get("type", "")),
                str(error.get("message", "")),
                str(error.get("job_id", "")),
                str(error.get("path", "")),
            )
            if isinstance(error, Mapping)
            else None,
            poll_url=body.get("poll_url"),
            retry_after=retry_after,
            raw=dict(body),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


_Polled = TypeVar("_Polled", JobInfo, WorkflowInfo)


@dataclass(frozen=True)
class JobPage:
    """A page of `GET /jobs`: jobs newest first (without `result`: `get` a job for it), and the
    cursor of the next page (None on the last)."""

    jobs: list[JobInfo]
    next_cursor: str | None


@dataclass(frozen=True)
class BatchJob:
    """A job of `submit_many`."""

    job_type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.job_type, "params": dict(self.params)}
        if self.idempotency_key is not None:
            body["idempotency_key"] = self.idempotency_key
        return body


# --- signing -----------------------------------------------------------------------------------


class Signer(Protocol):
    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The headers to send, signature included."""
        ...


class SigV4Signer:
    """Signs requests for API Gateway (`execute-api`) with botocore's SigV4 implementation."""

    def __init__(self, credentials: Any, region: str, service: str = "execute-api") -> None:
        self._credentials = credentials
        self.region = region
        self.service = service

    @classmethod
    def from_session(
        cls, region: str | None = None, profile: str | None = None, session: Any = None
    ) -> SigV4Signer:
        """Credentials and region from the usual places (environment, profile, SSO, role)."""
        import botocore.session

        if session is None:
            session = botocore.session.Session(profile=profile)
        try:
            credentials = session.get_credentials()
        except Exception as error:
            raise CredentialsError(f"could not load AWS credentials: {error}") from error
        if credentials is None:
            raise CredentialsError(
                "no AWS credentials found (set AWS_PROFILE, run `aws sso login`, or export "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        region = region or session.get_config_variable("region")
        if not region:
            raise CredentialsError("no AWS region (set AWS_REGION or pass --region)")
        return cls(credentials, region)

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body or None, headers=dict(headers))
        SigV4Auth(self._credentials, self.service, self.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}


def region_of(url: str) -> str | None:
    """The region in an API Gateway URL (`https://<id>.execute-api.<region>.amazonaws.com`)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    parts = host.split(".")
    if "execute-api" in parts:
        index = parts.index("execute-api")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class JobsClient:
    def __init__(
        self,
        base_url: str,
        *,
        signer: Signer | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConnectionFailedError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._signer = signer
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock

    def submit(
        self,
        job_type: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | str | None = None,
        retries: int = 2,
    ) -> SubmittedJob:
        """POST /jobs. Raises ApiError for 4xx/5xx answers.

        With `delay_seconds` (up to a year) or `run_at` (an aware datetime, or RFC 3339 text
        with an offset) the job is `scheduled` and runs at its time.

        With an `idempotency_key`, a `429`/`503` answer or a lost connection is retried (up to
        `retries` times, after `Retry-After` or a short backoff): the same key and body give
        the same job, so a retry never makes a second one. Without a key nothing is retried.
        """
        body: dict[str, Any] = {"type": job_type, "params": dict(params or {})}
        if delay_seconds is not None:
            body["delay_seconds"] = delay_seconds
        if run_at is not None:
            body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
        answer = self._create(route("submit_job").url(), body, idempotency_key, retries)
        return SubmittedJob.from_body(answer.body, answer.headers.get("location"))

    def _create(self, path: str, body: Any, idempotency_key: str | None, retries: int) -> _Answer:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        attempt = 0
        while True:
            try:
                return self._request("POST", path, body, headers)
            except (ApiError, ConnectionFailedError) as error:
                retryable = isinstance(error, ConnectionFailedError) or error.status in (429, 503)
                if not (idempotency_key and retryable and attempt < retries):
                    raise
                pause = getattr(error, "retry_after", None)
                self._sleep(pause if pause is not None else 0.5 * 2**attempt)
                attempt += 1

    def submit_many(self, jobs: Iterable[BatchJob]) -> list[SubmittedJob | ApiError]:
        """POST /jobs/batch, 100 jobs a request: one answer per job, in order — the job, or the
        ApiError it would have raised alone (nothing was written for it; a 503 one was not
        queued: submit it again, with its key the same job). Raises ApiError or
        ConnectionFailedError when a whole request fails (with keys, send it all again)."""
        answers: list[SubmittedJob | ApiError] = []
        pending = list(jobs)
        path = route("submit_jobs").url()
        for start in range(0, len(pending), MAX_BATCH_JOBS):
            chunk = pending[start : start + MAX_BATCH_JOBS]
            body = {"jobs": [job.to_body() for job in chunk]}
            answer = self._request("POST", path, body)
            for result in answer.body.get("results", []):
                if result.get("status") == 202 and isinstance(result.get("job"), Mapping):
                    job = result["job"]
                    location = route("get_job").url(id=_quoted(str(job["job_id"])))
                    answers.append(SubmittedJob.from_body(job, location))
                else:
                    status = int(result.get("status", 500))
                    answers.append(_api_error(status, result, None))
        return answers

    def list_page(
        self,
        *,
        status: str | Sequence[str] | None = None,
        job_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """GET /jobs: one page of the caller's jobs, newest first. Raises ApiError."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        query = {
            "status": ",".join(statuses) or None,
            "type": job_type,
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        encoded = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        path = route("list_jobs").url() + (f"?{encoded}" if encoded else "")
        answer = self._request("GET", path)
        return JobPage(
            jobs=[JobInfo.from_body(job) for job in answer.body.get("jobs", [])],
            next_cursor=answer.body.get("next_cursor"),
        )

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        job_type: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobPage]:
        """The caller's jobs, newest first, a page at a time (each page asked for when the
        previous one has been taken). A page may be short, even empty, with more to come."""
        cursor: str | None = None
        while True:
            page = self.list_page(status=status, job_type=job_type, limit=limit, cursor=cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, job_id: str) -> JobInfo:
        """GET /jobs/{id}. Raises ApiError (404 for an unknown job)."""
        answer = self._request("GET", route("get_job").url(id=_quoted(job_id)))
        return JobInfo.from_body(answer.body, _retry_after(answer.headers))

    def cancel(self, job_id: str) -> JobInfo:
        """POST /jobs/{id}/cancel: the job after the cancel — `cancelled`, or still `running`
        with `cancel_requested` until its code stops. Raises ApiError (409 when it already
        succeeded or failed, 404 for an unknown job)."""
        answer = self._request("POST", route("cancel_job").url(id=_quoted(job_id)))
        return JobInfo.from_body(answer.body, _retry_after(answer.headers))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = DEFAULT_WAIT_SECONDS,
        on_update: Callable[[JobInfo], None] | None = None,
        initial_interval: float = 0.5,
        max_interval: float = 10.0,
    ) -> JobInfo:
        """Poll until the job is terminal and return it; raise WaitTimeoutError after `timeout`.

        Waits as long as the API's `Retry-After` asks; without one, backs off from
        `initial_interval` up to `max_interval`. A `429`/`503` answer is waited out the same way.
        """
        return self._poll(
            lambda: self.get(job_id), timeout, on_update, initial_interval, max_interval
        )

    def submit_workflow(
        self, tree: Tree, *, idempotency_key: str | None = None, retries: int = 2
    ) -> WorkflowInfo:
        """POST /workflows: every step is written as a job and the first ones queued. Raises
        ApiError (422 naming the bad node's path, 413 for too many steps). With an
        `idempotency_key`, a `429`/`503` answer or a lost connection is retried as `submit`
        does; the retry finishes what the first request began."""
        answer = self._create(route("submit_workflow").url(), tree, idempotency_key, retries)
        return WorkflowInfo.from_body(answer.body, _retry_after(answer.headers))

    def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        """GET /workflows/{id}: its tree, each step's status and job. Raises ApiError (404)."""
        answer = self._request("GET", route("get_workflow").url(id=_quoted(workflow_id)))
        return WorkflowInfo.from_body(answer.body, _retry_after(answer.headers))

    def cancel_workflow(self, workflow_id: str) -> WorkflowInfo:
        """POST /workflows/{id}/cancel: cancels every step not yet finished. Raises ApiError
        (409 when it already succeeded, 404 for an unknown workflow)."""
        answer = self._request("POST", route("cancel_workflow").url(id=_quoted(workflow_id)))
        return WorkflowInfo.from_body(answer.body, _retry_after(answer.headers))

    def wait_workflow(
        self,
        workflow_id: str,
        *,
        timeout: float = DEFAULT_WAIT_SECONDS,
        on_update: Callable[[WorkflowInfo], None] | None = None,
        initial_interval: float = 0.5,
        max_interval: float = 10.0,
    ) -> WorkflowInfo:
        """Poll until the workflow is terminal and return it, as `wait` does for a job."""
        return self._poll(
            lambda: self.get_workflow(workflow_id),
            timeout,
            on_update,
            initial_interval,
            max_interval,
        )

    def _poll(
        self,
        read: Callable[[], _Polled],
        timeout: float,
        on_update: Callable[[_Polled], None] | None,
        initial_interval: float,
        max_interval: float,
    ) -> _Polled:
        deadline = self._clock() + timeout
        interval = initial_interval
        last: _Polled | None = None
        while True:
            try:
                job = read()
            except ApiError as error:
                if error.status not in (429, 503) or last is None:
                    raise
                pause = error.retry_after if error.retry_after is not None else interval
            else:
                last = job
                if on_update is not None:
                    on_update(job)
                if job.is_terminal:
                    return job
                pause = job.retry_after if job.retry_after is not None else interval
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise WaitTimeoutError(last, timeout)
            self._sleep(min(pause, remaining))
            interval = min(max_interval, interval * 1.5)

    # --- HTTP ----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        url = f"{self.base_url}{path}"
        # Compact UTF-8: non-ASCII text escaped as \\uXXXX would take up to six times the bytes
        # of the request size limit.
        body = (
            b""
            if payload is None
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        )
        send = {"accept": "application/json", "user-agent": USER_AGENT, **(headers or {})}
        if payload is not None:
            send["content-type"] = "application/json"
        if self._signer is not None:
            send = self._signer.sign(method, url, send, body)
        request = urllib.request.Request(  # noqa: S310  (the scheme is checked in __init__)
            url, data=body if payload is not None else None, headers=send, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                status, answer_headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, raw = error.code, error.headers, error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionFailedError(f"cannot reach {self.base_url}: {reason}") from error
        lowered = {k.lower(): v for k, v in answer_headers.items()}
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        if status >= 400:
            raise _api_error(status, decoded, _retry_after(lowered))
        if not isinstance(decoded, dict):
            raise ApiError(status, "UnexpectedAnswer", "the answer is not a JSON object", decoded)
        return _Answer(status, lowered, decoded)


def _quoted(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _api_error(status: int, body: Any, retry_after: float | None) -> ApiError:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return ApiError(
            status,
            str(error.get("type", "Error")),
            str(error.get("message", "")),
            body,
            retry_after,
        )
    # API Gateway's own answers (no route, bad signature, throttled): {"message": "..."}.
    message = body.get("message") if isinstance(body, dict) else None
    return ApiError(status, "HTTP", str(message or body or "no details"), body, retry_after)
