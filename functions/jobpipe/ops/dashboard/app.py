"""The dashboard as a WSGI application, server-rendered HTML with a small script for live refresh.

Pages, each a bounded number of AWS requests whatever the table holds:
- `/ui`: counts by state and by type of the newest `COUNTED_JOBS` jobs (through the time index:
  no Scan, no counter written per job), then the job list with its filters, refreshed live.
- `/ui/jobs`: the job list alone (what the live refresh fetches): one page, at most
  `TOPOLOGY.api.list_examine_limit` index entries looked at.
- `/ui/jobs/<id>`: one job (one GetItem), with cancel.
- `/ui/dlq`: the oldest `DLQ_LOOKED_AT` dead letters, filtered, with dry-run and replay.

Sections are a table (`SECTIONS`): a new page (workflows, schedules) is one more row and one
render function. Every form that changes something carries a token this process made, and a
request whose `Host` is not this machine's loopback is refused, so another web page open in the
operator's browser can neither drive it nor read it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobpipe.adapters.clients import error_code
from jobpipe.domain.job import JOB_ID_PATTERN, Job
from jobpipe.domain.states import JobStatus
from jobpipe.errors import JobError, JobFinishedError, JobNotFoundError
from jobpipe.ops.dashboard.assets import CSS, JS
from jobpipe.ports import JobQuery, JobStore
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from jobpipe.domain.workflow import NodeView
    from jobpipe.ops.dlq import DeadLetterQueue

_log = logging.getLogger(__name__)
PREFIX = "/ui"
# Counts are of this many of the newest jobs ("1,000+" beyond): reading them costs a bounded
# number of index entries and items however large the table, and no write per job.
COUNTED_JOBS = 1000
# Counts are kept this long between page views (live refresh included).
COUNTS_TTL_SECONDS = 10.0
PAGE_JOBS = 50
# The DLQ page looks at this many dead letters, oldest first (ten a ReceiveMessage).
DLQ_LOOKED_AT = 500
LIVE_EVERY_MS = 3000
_JOB_PATH = re.compile(rf"/jobs/(?P<id>{JOB_ID_PATTERN.strip('^$')})(?P<action>/cancel)?")
_WORKFLOW_PATH = re.compile(rf"/workflows/(?P<id>{JOB_ID_PATTERN.strip('^$')})")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Request:
    method: str
    path: str  # below the prefix: "", "/jobs", "/jobs/<id>"
    query: dict[str, str]
    form: dict[str, str]
    host: str


@dataclass
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """A page in the navigation: a new kind of thing to look at is one more of these."""

    path: str
    title: str
    render: Callable[[Dashboard, Request], Page]


class Dashboard:
    def __init__(
        self,
        store: JobStore,
        dead_letters: Callable[[], DeadLetterQueue],
        *,
        stack_name: str = "local",
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.time,
        sections: Iterable[Section] | None = None,
    ) -> None:
        self.store = store
        self._dead_letters = dead_letters
        self.stack_name = stack_name
        self.prefix = prefix
        self._clock = clock
        self.sections = list(sections) if sections is not None else list(SECTIONS)
        # Forms that change something carry it; another site cannot know it.
        self.token = secrets.token_urlsafe(24)
        self._counts: tuple[float, Counts] | None = None
        self._lock = threading.Lock()

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        page = self.handle(_request(environ, self.prefix))
        body = page.body.encode("utf-8")
        headers = [
            ("Content-Type", page.content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            # Nothing but this page's own script, styles and requests.
            (
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self'; style-src 'self'; "
                "frame-ancestors 'none'; form-action 'self'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            *page.headers.items(),
        ]
        start_response(f"{page.status} {_REASONS.get(page.status, 'OK')}", headers)
        return iter([body])

    def handle(self, request: Request) -> Page:
        if request.host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
            return Page(403, "the dashboard answers on this machine's loopback address only")
        if request.method == "POST" and not secrets.compare_digest(
            request.form.get("token", ""), self.token
        ):
            return Page(403, "this form is stale or not from the dashboard: reload the page")
        try:
            return self._route(request)
        except JobError as error:
            return self._layout("Unavailable", f"<p class='flash'>{_e(str(error))}</p>", status=503)
        except Exception as error:  # noqa: BLE001  (AWS errors reading the queues: say which)
            code = error_code(error)
            _log.exception("dashboard page failed")
            message = f"AWS answered {code}: check your credentials" if code else "see the log"
            return self._layout("Error", f"<p class='flash'>{_e(message)}</p>", status=500)

    def _route(self, request: Request) -> Page:
        if request.path == "/static/dashboard.css":
            return Page(200, CSS, "text/css; charset=utf-8")
        if request.path == "/static/dashboard.js":
            return Page(200, JS, "text/javascript; charset=utf-8")
        if request.path == "/jobs" and request.method == "GET":
            return Page(200, self._job_table(request))
        found = _JOB_PATH.fullmatch(request.path)
        if found and found["action"] and request.method == "POST":
            return self._cancel(found["id"].upper())
        if found and not found["action"] and request.method == "GET":
            return self._job_page(found["id"].upper(), request)
        flow = _WORKFLOW_PATH.fullmatch(request.path)
        if flow and request.method == "GET":
            return self._workflow_page(flow["id"].upper())
        for section in self.sections:
            if request.path.rstrip("/") == section.path.rstrip("/"):
                return section.render(self, request)
        return self._layout("Not found", "<p>No such page.</p>", status=404)

    # --- pages ----------------------------------------------------------------------------------

    def overview(self, request: Request) -> Page:
        counts = self.counts()
        query = _filters(request.query)
        body = f"""
<h1>Jobs</h1>
<div class="counts">
{_count_table("By state", counts.by_status, counts.capped, "status")}
{_count_table("By type", counts.by_type, counts.capped, "type")}
</div>
<p class="note">{_e(counts.describe())}</p>
<h2>Jobs, newest first</h2>
<form class="filters" method="get" action="{self.prefix}">
  <label>State <select name="status" id="filter-status">{_options(query.get("status"))}
  </select></label>
  <label>Type <input name="type" id="filter-type" value="{_e(query.get("type", ""))}"></label>
  <label>Owner <input name="owner" id="filter-owner" value="{_e(query.get("owner", ""))}"
    size="28"></label>
  <button type="submit" id="apply-filters">Filter</button>
  <label><span><input type="checkbox" id="live" checked> live</span></label>
</form>
<div id="refreshed" data-every="{LIVE_EVERY_MS}"
  data-src="{self.prefix}/jobs?{_e(urllib.parse.urlencode(query))}">{self._job_table(request)}</div>
"""
        return self._layout("Jobs", body, here="")

    def _job_table(self, request: Request) -> str:
        query = _filters(request.query)
        status = query.get("status")
        page = self.store.list_jobs(
            JobQuery(
                owner=query.get("owner") or None,
                statuses=frozenset({JobStatus(status)}) if status else frozenset(),
                job_type=query.get("type") or None,
                before=query.get("before") or None,
                limit=PAGE_JOBS,
                examine=TOPOLOGY.api.list_examine_limit,
            )
        )
        rows = "".join(
            f"""<tr data-job-id="{_e(job.job_id)}">
<td><a href="{self.prefix}/jobs/{_e(job.job_id)}"><code>{_e(job.job_id)}</code></a></td>
<td>{_e(job.type)}</td><td>{_status(job.status)}</td>
<td class="num">{job.attempts}/{job.max_attempts}</td><td>{_e(job.owner)}</td>
<td>{_when(job.created_at)}</td><td>{_when(job.updated_at)}</td></tr>"""
            for job in page.jobs
        )
        table = (
            "<table id='jobs'><thead><tr><th>Job</th><th>Type</th><th>State</th>"
            "<th>Attempts</th><th>Owner</th><th>Created</th><th>Updated</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        if not page.jobs:
            table += "<p class='note' id='no-jobs'>No jobs match on this page.</p>"
        if page.next_before is not None:
            older = urllib.parse.urlencode({**query, "before": page.next_before})
            table += f"<p><a id='older' href='{self.prefix}?{_e(older)}'>Older jobs &rarr;</a>"
            table += f" <span class='note'>({page.examined} looked at)</span></p>"
        return table

    def _job_page(self, job_id: str, request: Request) -> Page:
        job = self.store.get(job_id)
        if job is None:
            return self._layout("Not found", f"<p>No job {_e(job_id)}.</p>", status=404)
        flash = request.query.get("flash", "")
        cancel = ""
        if not job.is_terminal:
            label = "Cancel requested" if job.cancel_requested else "Cancel"
            cancel = f"""<form method="post" action="{self.prefix}/jobs/{_e(job.job_id)}/cancel">
<input type="hidden" name="token" value="{_e(self.token)}">
<button type="submit" id="cancel">{label}</button></form>"""
        errors = "".join(
            f"<tr><td class='num'>{e.attempt}</td><td>{_e(e.type)}</td><td>{_e(e.message)}</td>"
            f"<td>{_when(e.at)}</td></tr>"
            for e in job.errors
        )
        failure = job.error if job.status is JobStatus.FAILED else None
        asked = " (cancel requested)" if job.cancel_requested else ""
        retrying = job.status is JobStatus.RETRYING
        sections = [f'<h2>Params</h2><pre id="job-params">{_json(job.params)}</pre>']
        if job.status is JobStatus.SUCCEEDED:
            sections.append(f'<h2>Result</h2><pre id="job-result">{_json(job.result)}</pre>')
        if failure is not None:
            error = f"{_e(failure.type)}: {_e(failure.message)}"
            sections.append(f'<h2>Error</h2><pre id="job-error">{error}</pre>')
        sections.append("<h2>Failed attempts</h2>")
        sections.append(
            "<table id='attempt-errors'><thead><tr><th>Attempt</th><th>Error</th>"
            f"<th>Message</th><th>At</th></tr></thead><tbody>{errors}</tbody></table>"
            if errors
            else "<p class='note'>None.</p>"
        )
        body = f"""
<h1>Job <code id="job-id">{_e(job.job_id)}</code> {_status(job.status)}</h1>
{f"<p class='flash' id='flash'>{_e(flash)}</p>" if flash else ""}
{cancel}
<dl>
<dt>Type</dt><dd id="job-type">{_e(job.type)}</dd>{self._workflow_link(job)}
<dt>Owner</dt><dd id="job-owner">{_e(job.owner)}</dd>
<dt>State</dt><dd id="job-status">{_e(job.status.value)}{asked}</dd>
<dt>Attempts</dt><dd>{job.attempts} of {job.max_attempts}</dd>
<dt>Created</dt><dd>{_when(job.created_at)}</dd>
<dt>Started</dt><dd>{_when(job.started_at)}</dd>
<dt>Completed</dt><dd>{_when(job.completed_at)}</dd>
<dt>Next attempt</dt><dd>{_when(job.next_attempt_at) if retrying else "&ndash;"}</dd>
<dt>Updated</dt><dd>{_when(job.updated_at)}</dd>
<dt>Dead-lettered</dt><dd>{"yes" if job.dead_lettered else "no"}, replayed {job.replays} \
times</dd>
<dt>Progress</dt><dd id="job-progress">{_progress(job)}</dd>
</dl>
{"".join(sections)}
"""
        return self._layout(f"Job {job.job_id}", body)

    def _workflow_link(self, job: Job) -> str:
        if job.step is None:
            return ""
        href = f"{self.prefix}/workflows/{_e(job.step.workflow_id)}"
        return (
            f'<dt>Workflow</dt><dd><a id="job-workflow" href="{href}">'
            f"{_e(job.step.workflow_id)}</a> at <code>{_e(job.step.path)}</code></dd>"
        )

    def _workflow_page(self, workflow_id: str) -> Page:
        """A workflow as a tree: each node's status, each step's job."""
        from jobpipe.domain.workflow import view

        workflow = self.store.get_workflow(workflow_id)
        if workflow is None:
            return self._layout("Not found", f"<p>No workflow {_e(workflow_id)}.</p>", status=404)
        ids = workflow.member_ids()
        found = self.store.get_many(ids)
        tree = view(workflow.shape, [found.get(job_id) for job_id in ids])
        error = ""
        if workflow.error is not None and workflow.status.value != "succeeded":
            cause = workflow.error
            error = (
                f"<p class='flash' id='workflow-error'>{_e(cause.type)}: {_e(cause.message)} "
                f"(step <code>{_e(cause.path)}</code>, {_job_link(self.prefix, cause.job_id)})</p>"
            )
        state = (
            f'<span class="status status-{_e(workflow.status.value)}">'
            f"{_e(workflow.status.value)}</span>"
        )
        body = f"""
<h1>Workflow <code id="workflow-id">{_e(workflow.workflow_id)}</code> {state}</h1>
{error}
<dl>
<dt>Owner</dt><dd>{_e(workflow.owner)}</dd>
<dt>Steps</dt><dd>{workflow.members}</dd>
<dt>Created</dt><dd>{_when(workflow.created_at)}</dd>
<dt>Completed</dt><dd>{_when(workflow.completed_at)}</dd>
</dl>
<ul class="tree" id="workflow-tree">{self._node(tree)}</ul>
"""
        return self._layout(f"Workflow {workflow.workflow_id}", body)

    def _node(self, node: NodeView) -> str:
        status = f'<span class="status status-{_e(node.status)}">{_e(node.status)}</span>'
        if node.kind == "step":
            job = node.job
            what = f"{_e(job.type)} {_job_link(self.prefix, job.job_id)}" if job else "(gone)"
            return f"<li><code>{_e(node.path)}</code> {what} {status}</li>"
        inner = "".join(self._node(child) for child in node.children)
        if node.body is not None:
            inner = f"<li>header<ul>{inner}</ul></li><li>body<ul>{self._node(node.body)}</ul></li>"
        go_on = " (continue on failure)" if node.continue_on_failure else ""
        return f"<li>{_e(node.kind)}{go_on} {status}<ul>{inner}</ul></li>"

    def _cancel(self, job_id: str) -> Page:
        from jobpipe.cancel.service import CancelService

        job = self.store.get(job_id)
        if job is None:
            return self._layout("Not found", f"<p>No job {_e(job_id)}.</p>", status=404)
        try:
            cancelled = CancelService(self.store, clock=self._clock).cancel(job.owner, job_id)
        except (JobFinishedError, JobNotFoundError) as error:
            flash = f"Not cancelled: {error}"
        else:
            flash = (
                "Cancelled."
                if cancelled.status is JobStatus.CANCELLED
                else "Asked to stop: it ends cancelled when its code next checks."
            )
        self._counts = None
        location = f"{self.prefix}/jobs/{job_id}?" + urllib.parse.urlencode({"flash": flash})
        return Page(303, "", headers={"Location": location})

    def dlq(self, request: Request) -> Page:
        from jobpipe.ops.dlq import ReplayFilter

        form = request.form if request.method == "POST" else request.query
        job_type = form.get("type", "").strip()
        error_type = form.get("error", "").strip()
        where = ReplayFilter(
            job_types=frozenset({job_type}) if job_type else frozenset(),
            error_types=frozenset({error_type}) if error_type else frozenset(),
        )
        queue = self._dead_letters()
        report_html = ""
        if request.method == "POST":
            dry_run = form.get("action") != "replay"
            report = queue.replay(where, dry_run=dry_run, look_at=DLQ_LOOKED_AT)
            rows = "".join(
                f"<tr><td><code>{_e(o.job_id or '')}</code></td><td>{_e(o.job_type or '')}</td>"
                f"<td>{_e(o.action.value)}</td><td>{_e(o.detail)}</td></tr>"
                for o in report.outcomes
            )
            title = "Dry run: would do" if dry_run else "Replayed"
            report_html = (
                f"<h2 id='report-title'>{title}</h2><table id='report'><thead><tr><th>Job</th>"
                f"<th>Type</th><th>Action</th><th>Detail</th></tr></thead><tbody>{rows}</tbody>"
                "</table>"
            )
            self._counts = None
        now = self._clock()
        letters = queue.list_messages(where, look_at=DLQ_LOOKED_AT)
        rows = "".join(
            f"""<tr data-job-id="{_e(letter.job_id or "")}">
<td>{_job_link(self.prefix, letter.job_id)}</td><td>{_e(letter.job_type or "")}</td>
<td>{_e(letter.error_type or "")}</td><td>{_e(letter.error_message or "")}</td>
<td class="num">{letter.attempts if letter.attempts is not None else ""}</td>
<td class="num">{round(letter.age_seconds(now))} s</td></tr>"""
            for letter in letters
        )
        body = f"""
<h1>Dead-letter queue</h1>
<form class="filters" method="post" action="{self.prefix}/dlq">
  <input type="hidden" name="token" value="{_e(self.token)}">
  <label>Type <input name="type" id="dlq-type" value="{_e(job_type)}"></label>
  <label>Error <input name="error" id="dlq-error" value="{_e(error_type)}"></label>
  <button type="submit" name="action" value="dry-run" id="dry-run">Dry run</button>
  <button type="submit" name="action" value="replay" id="replay">Replay</button>
</form>
<p class="note">Replay resets each matching job to pending with fresh attempts and sends it to
the jobs queue; a job that already succeeded is only removed from the DLQ. The oldest
{DLQ_LOOKED_AT} dead letters are looked at.</p>
{report_html}
<h2>Dead letters ({len(letters)})</h2>
<table id="dead-letters"><thead><tr><th>Job</th><th>Type</th><th>Error</th><th>Message</th>
<th>Attempts</th><th>Age</th></tr></thead><tbody>{rows}</tbody></table>
"""
        return self._layout("Dead-letter queue", body, here="/dlq")

    # --- counts ---------------------------------------------------------------------------------

    def counts(self) -> Counts:
        with self._lock:
            now = self._clock()
            if self._counts is not None and now - self._counts[0] < COUNTS_TTL_SECONDS:
                return self._counts[1]
            page = self.store.list_jobs(
                JobQuery(owner=None, limit=COUNTED_JOBS, examine=COUNTED_JOBS)
            )
            counts = Counts(
                by_status=Counter(job.status.value for job in page.jobs),
                by_type=Counter(job.type for job in page.jobs),
                counted=len(page.jobs),
                capped=page.next_before is not None,
            )
            self._counts = (now, counts)
            return counts

    # --- layout ---------------------------------------------------------------------------------

    def _layout(self, title: str, body: str, *, here: str | None = None, status: int = 200) -> Page:
        nav = "".join(
            f"<a href='{self.prefix}{s.path}'{' class=here' if s.path == here else ''}>"
            f"{_e(s.title)}</a>"
            for s in self.sections
        )
        return Page(
            status,
            f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)} &middot; jobpipe</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{self.prefix}/static/dashboard.css"></head>
<body><header><strong>jobpipe</strong><span class="note">stack {_e(self.stack_name)}</span>
<nav>{nav}</nav></header>
<main>{body}</main>
<script src="{self.prefix}/static/dashboard.js"></script>
</body></html>
""",
        )


@dataclass(frozen=True)
class Counts:
    by_status: Counter[str]
    by_type: Counter[str]
    counted: int
    # More jobs exist than were counted.
    capped: bool

    def describe(self) -> str:
        if self.capped:
            return (
                f"Counts of the newest {self.counted:,} jobs (there are more): read from the "
                f"listing index, refreshed every {COUNTS_TTL_SECONDS:.0f} s."
            )
        return f"All {self.counted:,} jobs, refreshed every {COUNTS_TTL_SECONDS:.0f} s."


SECTIONS: tuple[Section, ...] = (
    Section("", "Jobs", Dashboard.overview),
    Section("/dlq", "Dead letters", Dashboard.dlq),
)


# --- helpers ------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    303: "See Other",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_FILTERS = ("status", "type", "owner", "before")


def _request(environ: WSGIEnvironment, prefix: str) -> Request:
    path = environ.get("PATH_INFO", "") or ""
    if path.startswith(prefix):
        path = path[len(prefix) :]
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    form: dict[str, str] = {}
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(min(length, 64 * 1024)) if length > 0 else b""
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    return Request(method, path, query, form, host)


def _filters(query: dict[str, str]) -> dict[str, str]:
    """The list's filters from a query string, those that make sense only."""
    kept = {name: query[name].strip() for name in _FILTERS if query.get(name, "").strip()}
    if kept.get("status") not in {s.value for s in JobStatus}:
        kept.pop("status", None)
    if "before" in kept and not re.fullmatch(JOB_ID_PATTERN, kept["before"]):
        kept.pop("before")
    return kept


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    return _e(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _when(ms: int | None) -> str:
    if ms is None:
        return "&ndash;"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _status(status: JobStatus) -> str:
    return f"<span class='status {_e(status.value)}'>{_e(status.value)}</span>"


def _options(selected: str | None) -> str:
    options = ["<option value=''>any</option>"]
    for status in JobStatus:
        mark = " selected" if status.value == selected else ""
        options.append(f"<option value='{status.value}'{mark}>{status.value}</option>")
    return "".join(options)


def _count_table(title: str, counts: Counter[str], capped: bool, name: str) -> str:
    rows = "".join(
        f"<tr><td><a href='?{_e(urllib.parse.urlencode({name: key}))}'>{_e(key)}</a></td>"
        f"<td class='num' data-count='{_e(key)}'>{value:,}{'+' if capped else ''}</td></tr>"
        for key, value in counts.most_common()
    )
    return (
        f"<table class='count' id='counts-{name}'><thead><tr><th>{_e(title)}</th><th></th></tr>"
        f"</thead><tbody>{rows or '<tr><td>no jobs</td><td></td></tr>'}</tbody></table>"
    )


def _progress(job: Job) -> str:
    progress = job.progress
    if progress is None:
        return "&ndash;"
    total = f" of {progress.total:g}" if progress.total is not None else ""
    message = f": {_e(progress.message)}" if progress.message else ""
    return f"{progress.current:g}{total}{message} ({_when(progress.at)})"


def _job_link(prefix: str, job_id: str | None) -> str:
    if not job_id:
        return ""
    return f"<a href='{prefix}/jobs/{_e(job_id)}'><code>{_e(job_id)}</code></a>"
