"""Bad input never hurts the API: property-based requests against the local stack over HTTP.

Bodies come from the API's own OpenAPI document (its JSON schemas turned into hypothesis
strategies below), mixed with arbitrary JSON, deeply nested JSON, bodies over the size limit,
bytes that are not UTF-8, forms and multipart uploads, strings no Unicode text can hold (lone
surrogates) and other odd ones, sent with every Content-Type a browser or curl sends (and
JSON's look-alikes and odd spellings), odd and oversized headers and odd job ids. For every
request: no 5xx, no internal detail in the answer, and a rejected request writes and queues
nothing; only `application/json` is ever accepted, and never a lone surrogate. Workflows get the
same, with trees built from every node kind, malformed ones among them, nested at random.

The suite runs a few hundred requests; `make fuzz` runs 10,000 (JOBPIPE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobpipe.local.stack import LocalStack
from jobpipe.topology import TOPOLOGY
from tests.fuzz.conftest import TALLY

EXAMPLES = int(os.environ.get("JOBPIPE_FUZZ_EXAMPLES", "300"))
# Eight property tests share the budget (the header test sends several requests an example).
PER_TEST = max(40, EXAMPLES // 8)
FUZZ = settings(
    max_examples=PER_TEST,
    deadline=None,
    derandomize=EXAMPLES <= 300,  # the suite's run is the same every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LEAKS = ("Traceback", "botocore", "boto3", "arn:aws", "ConditionalCheckFailed", "jobpipe.")


@dataclass
class Api:
    stack: LocalStack
    host: str
    port: int
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
            self.requests += 1

    def footprint(self) -> tuple[int, int, int]:
        """Jobs in the table, messages on the queue (the worker is off), and schedules waiting
        in the stack's schedule group."""
        import boto3

        config = self.stack.config
        # moto counts a table's items live (AWS refreshes ItemCount every few hours); a Scan
        # per request would grow with every accepted job.
        table = boto3.client("dynamodb").describe_table(TableName=config.table_name)["Table"]
        # Visible and delayed together: an accepted delayed job's message becomes visible while
        # a later request is checked.
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=config.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        schedules = boto3.client("scheduler").list_schedules(GroupName=config.schedule_group)
        return (
            int(table["ItemCount"]),
            sum(int(count) for count in attributes.values()),
            len(schedules["Schedules"]),
        )

    def check(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        before = self.footprint()
        status, answer = self.call(method, path, body, headers)
        label = f"{method} {path[:80]} -> {status}"
        if status >= 500:
            self.server_errors.append(label)
        assert status < 500, label
        text = answer.decode("utf-8", "replace")
        assert not any(leak in text for leak in LEAKS), f"{label}: {text[:300]}"
        if status >= 400:
            assert self.footprint() == before, f"{label} changed the table or the queue"
        return status, answer


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with LocalStack(port=0, worker=False) as stack:
        host, port = stack.api_url.removeprefix("http://").split(":")
        api = Api(stack, host, int(port))
        yield api
    TALLY["requests"] += api.requests
    TALLY["server_errors"] += len(api.server_errors)


def _openapi_body_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    from jobpipe.api.app import openapi_document

    document = openapi_document()
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    return body["schema"], document["components"]["schemas"]


def from_schema(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy a JSON schema, for the subset the OpenAPI document uses."""
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        return st.one_of([from_schema(option, components) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 100))
    if kind == "integer":
        return st.integers()
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components), max_size=5)
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = st.fixed_dictionaries(
            {name: from_schema(properties[name], components) for name in required},
            optional={
                name: from_schema(sub, components)
                for name, sub in properties.items()
                if name not in required
            },
        )
        if schema.get("additionalProperties") is False:
            return fixed
        extra = st.dictionaries(st.text(max_size=10), JSON, max_size=4)
        return st.tuples(extra, fixed).map(lambda pair: {**pair[0], **pair[1]})
    return JSON  # no type: any JSON value


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
KNOWN_TYPES = st.sampled_from(["echo", "sleep", "fail", "flaky", "Echo", "", " echo", "x" * 65])
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=300
)


# Every Content-Type a browser (fetch, XHR, an HTML form) or curl sends, JSON's look-alikes,
# and JSON in the spellings the contract accepts (any case, with parameters). None: no header.
CONTENT_TYPES = (
    None,
    "",
    "application/json",
    "Application/JSON",
    "APPLICATION/JSON",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    'Application/Json ; Charset="utf-8"',
    "application/json; charset=iso-8859-1",
    "application/json;",
    "application/jsonx",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/vnd.api+json",
    "text/json",
    "application/json, text/plain",
    "text/plain",
    "text/plain;charset=UTF-8",
    "text/html",
    "application/xml",
    "text/xml",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "multipart/form-data; boundary=------------------------d74496d66958873e",
    "application/octet-stream",
    "*/*",
    "application/*",
    ";",
)
# Strings that have broken JSON APIs: half a surrogate pair (no UTF-8 text can hold it), a whole
# pair (one character once JSON-escaped, two halves as raw bytes), NUL, a byte-order mark, bidi
# and line-separator controls, a non-character, combining marks, escapes that look like escapes.
ODD_STRINGS = st.sampled_from(
    ["\ud800", "\udfff", "\udc00\ud800", "a\ud83d", "\ud83d\ude00", "\U0001f600", "\x00",
     "\ufeff", "\u202e", "\u2028", "\uffff", "\U0010ffff", "e\u0301", "\\ud800",
     "\U0001d55b" * 300, "", " ", '"', "null"]
) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
    | st.characters(),
    max_size=12,
)  # fmt: skip
MULTIPART_BODY = (
    b"------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
    b'Content-Disposition: form-data; name="type"\r\n\r\n'
    b"echo\r\n"
    b"------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"
)


# Delays: numbers in and out of range (0 s to a year), and what is not a number of seconds.
DELAYS = (
    st.floats(allow_nan=False)
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.sampled_from([0, 0.001, 1, 900, 901, 365 * 86400, 365 * 86400 + 1, -1, -0.0, 1e308])
    | st.booleans()
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=2)
)
# Times: RFC 3339 with offsets (past, soon, beyond 15 minutes, beyond a year), without one,
# look-alikes, and what is not a time at all.
TIMES = (
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ).map(lambda when: when.isoformat())
    | st.integers(min_value=-60, max_value=400 * 86400).map(
        lambda seconds: (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    )
    | st.datetimes().map(lambda when: when.isoformat())  # no offset
    | st.sampled_from(
        ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "tomorrow", "", "now", "2026-05-01",
         "2026-05-01T09:00:00+25:00", "2026-05-01T09:00:00z", "1714554000", "24:00:00Z"]
    )
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)  # fmt: skip


def _nested(depth: int) -> str:
    return '{"type": "echo", "params": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@st.composite
def odd_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A job whose type, param names or param values (at any depth) are odd strings."""
    params = draw(
        st.dictionaries(ODD_STRINGS | st.text(max_size=5), ODD_STRINGS | JSON, max_size=4)
    )
    if draw(st.booleans()):
        params = {"nested": [params, draw(ODD_STRINGS)]}
    return {"type": draw(KNOWN_TYPES | ODD_STRINGS), "params": params}


@st.composite
def submit_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["schema", "typed", "json", "odd", "nested", "bytes", "form", "multipart", "huge"]
        )
    )
    if kind == "odd":
        job = draw(odd_jobs())
        if draw(st.booleans()):
            return json.dumps(job).encode()  # lone surrogates as \ud800 escapes
        return json.dumps(job, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if kind == "form":
        return urllib.parse.urlencode({"type": draw(KNOWN_TYPES), "params": "{}"}).encode()
    if kind == "multipart":
        return MULTIPART_BODY
    if kind == "schema":
        return json.dumps(draw(from_schema(*_openapi_body_schema()))).encode()
    if kind == "typed":
        body = {"type": draw(KNOWN_TYPES), "params": draw(JSON)}
        return json.dumps(body).encode()
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "nested":
        return _nested(draw(st.integers(min_value=50, max_value=5000))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200)) + b"\xff\xfe\x80"
    limit = TOPOLOGY.api.max_body_bytes
    return b'{"type": "echo", "params": {"pad": "' + b"x" * (limit + 10) + b'"}}'


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


@given(
    body=submit_bodies(),
    idempotency_key=st.none() | HEADER_TEXT,
    content_type=st.sampled_from(CONTENT_TYPES) | HEADER_TEXT,
)
@FUZZ
def test_no_submit_answers_5xx_or_writes_for_a_rejected_request(
    api: Api, body: bytes, idempotency_key: str | None, content_type: str | None
) -> None:
    # Given any body and headers / When it is POSTed to /jobs
    headers = {} if content_type is None else {"content-type": content_type}
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    status, _ = api.check("POST", "/jobs", body, headers)
    # Then it is accepted or refused with a 4xx, never a server error (checked in `check`)
    assert status in {202, 400, 409, 413, 415, 422}
    # And only a body sent as application/json is ever accepted
    assert status != 202 or _is_json(content_type), content_type


@given(job=odd_jobs(), escaped=st.booleans(), content_type=st.sampled_from(CONTENT_TYPES))
@FUZZ
def test_odd_strings_anywhere_in_a_job_never_answer_5xx_or_store_a_lone_surrogate(
    api: Api, job: dict[str, Any], escaped: bool, content_type: str | None
) -> None:
    # Given a job with odd strings in its type, its param names or its param values, as JSON
    # escapes or as raw (surrogate) bytes, under any Content-Type
    body = (
        json.dumps(job).encode()
        if escaped
        else json.dumps(job, ensure_ascii=False).encode("utf-8", "surrogatepass")
    )
    headers = {} if content_type is None else {"content-type": content_type}
    # When it is submitted
    status, _ = api.check("POST", "/jobs", body, headers)
    # Then it is accepted or refused with a 4xx, never a server error (checked in `check`)
    assert status in {202, 400, 415, 422}
    # And a job holding half a surrogate pair is never accepted, so never stored. Escaped, a
    # high and a low surrogate side by side are one character (JSON joins them); as raw bytes,
    # any surrogate makes the body not UTF-8.
    sent = json.loads(body) if escaped else job
    if _has_lone_surrogate(sent):
        assert status in {400, 415}, (status, ascii(job))


@given(
    delay=st.none() | DELAYS,
    run_at=st.none() | TIMES,
)
@FUZZ
def test_delays_and_times_are_accepted_or_refused_with_422_never_lost(
    api: Api, delay: Any, run_at: Any
) -> None:
    # Given a job with any delay_seconds and run_at (either, both or neither)
    body: dict[str, Any] = {"type": "echo", "params": {}}
    if delay is not None:
        body["delay_seconds"] = delay
    if run_at is not None:
        body["run_at"] = run_at
    # When it is submitted
    _, _, schedules_before = api.footprint()
    status, answer = api.check(
        "POST", "/jobs", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    # Then it is accepted or refused with a 422 naming a field, never a server error
    assert status in {202, 422}, (status, body)
    reply = json.loads(answer)
    if status == 422:
        return
    # And a number of seconds out of range, or both at once, is never accepted
    assert not (delay is not None and run_at is not None), body
    if delay is not None:
        assert type(delay) in (int, float) and 0 <= delay <= 365 * 86400, body
    # And an accepted job is scheduled when it is due later, with at most one schedule made
    assert reply["status"] in {"pending", "scheduled"}
    assert (reply["status"] == "scheduled") == ("run_at" in reply)
    _, _, schedules_after = api.footprint()
    assert schedules_after - schedules_before in (0, 1)


@given(job_id=st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.hex()))
@FUZZ
def test_no_job_id_makes_the_status_route_fail(api: Api, job_id: str) -> None:
    # Given any id, percent-encoded into the path / When it is read
    path = "/jobs/" + urllib.parse.quote(job_id, safe="")
    status, _ = api.check("GET", path, None, {})
    # Then the answer is 400 (not an id), 404 (no such job) or a route miss, never a 5xx
    assert status in {400, 404}


@given(
    job_id=st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.hex()),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
    body=st.none() | st.binary(max_size=200),
)
@FUZZ
def test_no_job_id_or_body_makes_the_cancel_route_fail(
    api: Api, job_id: str, content_type: str, body: bytes | None
) -> None:
    # Given any id, percent-encoded into the path, and any body / When it is cancelled
    path = "/jobs/" + urllib.parse.quote(job_id, safe="") + "/cancel"
    headers = {"content-type": content_type} if content_type else {}
    status, _ = api.check("POST", path, body, headers)
    # Then the answer is 400 (not an id), 404 (no such job) or a route miss, never a 5xx
    assert status in {400, 404}


@given(
    name=st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=20),
    value=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8000),
)
@FUZZ
def test_odd_and_huge_headers_do_not_break_either_route(api: Api, name: str, value: str) -> None:
    # Given an unusual header on both routes
    headers = {f"x-{name}": value, "content-type": "application/json"}
    body = json.dumps({"type": "echo", "params": {}}).encode()
    # When the requests are made / Then neither answers a server error
    api.check("POST", "/jobs", body, headers)
    api.check("GET", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", None, headers)
    api.check("POST", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel", None, headers)


def _steps() -> st.SearchStrategy[Any]:
    typed = st.fixed_dictionaries(
        {"type": KNOWN_TYPES | ODD_STRINGS},
        optional={"params": JSON | st.dictionaries(ODD_STRINGS, JSON, max_size=3)},
    )
    return typed | st.just({"type": "echo"}) | st.just({"type": "fail", "params": {}})


def _nodes(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    many = st.lists(children, max_size=4)
    flag = st.none() | st.booleans() | st.text(max_size=3)

    def with_flag(node: dict[str, Any], value: Any) -> dict[str, Any]:
        return node if value is None else {**node, "continue_on_failure": value}

    chain = many.map(lambda nodes: {"chain": nodes})
    group = st.tuples(many, flag).map(lambda pair: with_flag({"group": pair[0]}, pair[1]))
    chord = st.tuples(many | JSON, children | JSON, flag).map(
        lambda t: with_flag({"chord": {"header": t[0], "body": t[1]}}, t[2])
    )
    broken = st.sampled_from([{"chord": {"header": []}}, {"chain": [], "group": []}, {"x": []}])
    return chain | group | chord | broken


WORKFLOW_TREES = st.recursive(_steps(), _nodes, max_leaves=25)


@st.composite
def workflow_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["tree", "tree", "tree", "json", "bytes", "wide", "huge"]))
    if kind == "tree":
        tree = draw(WORKFLOW_TREES)
        if draw(st.booleans()):
            return json.dumps(tree).encode()
        return json.dumps(tree, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200)) + b"\xff\xfe\x80"
    if kind == "wide":
        # Over the member limit: 413 before anything is written (a workflow at the limit is
        # accepted: tests/workflow).
        count = TOPOLOGY.workflow.max_members + draw(st.integers(min_value=1, max_value=3))
        return json.dumps({"group": [{"type": "echo"}] * count}).encode()
    limit = TOPOLOGY.api.max_body_bytes
    return b'{"chain": [{"type": "echo", "params": {"pad": "' + b"x" * limit + b'"}}]}'


@given(
    body=workflow_bodies(),
    idempotency_key=st.none() | HEADER_TEXT,
    content_type=st.sampled_from(CONTENT_TYPES[:10]) | HEADER_TEXT,
)
@FUZZ
def test_no_workflow_answers_5xx_or_writes_for_a_rejected_request(
    api: Api, body: bytes, idempotency_key: str | None, content_type: str | None
) -> None:
    # Given any tree (or no tree) and headers / When it is POSTed to /workflows
    headers = {} if content_type is None else {"content-type": content_type}
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    status, answer = api.check("POST", "/workflows", body, headers)
    # Then it is accepted or refused with a 4xx, never a server error (checked in `check`), and
    # a refusal of the tree names where it is wrong
    assert status in {202, 400, 409, 413, 415, 422}
    assert status != 202 or _is_json(content_type), content_type
    if status == 422:
        assert json.loads(answer)["error"]["message"]


@given(
    workflow_id=st.text(max_size=80) | st.binary(max_size=40).map(lambda b: b.hex()),
    cancel=st.booleans(),
)
@FUZZ
def test_no_workflow_id_makes_its_routes_fail(api: Api, workflow_id: str, cancel: bool) -> None:
    # Given any id, percent-encoded into the path / When it is read or cancelled
    path = "/workflows/" + urllib.parse.quote(workflow_id, safe="")
    status, _ = api.check(
        "POST" if cancel else "GET", path + ("/cancel" if cancel else ""), None, {}
    )
    # Then the answer is 400 (not an id) or 404 (no such workflow), never a 5xx
    assert status in {400, 404}


def test_a_body_nested_thousands_deep_is_refused_cleanly(api: Api) -> None:
    # Given params nested far deeper than any real job's / When they are submitted
    status, answer = api.check(
        "POST", "/jobs", _nested(100_000).encode(), {"content-type": "application/json"}
    )
    # Then the API answers 4xx with a JSON error
    assert 400 <= status < 500
    assert json.loads(answer)


@st.composite
def batch_bodies(draw: st.DrawFn) -> bytes:
    """`POST /jobs/batch` bodies: lists of odd, typed, arbitrary and keyed jobs, or not a batch
    at all."""
    kind = draw(st.sampled_from(["jobs", "json", "bytes", "many"]))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200)) + b"\xff\xfe\x80"
    if kind == "many":
        return json.dumps({"jobs": [{"type": "echo"}] * draw(st.integers(101, 150))}).encode()
    keyed = st.fixed_dictionaries(
        {"type": KNOWN_TYPES, "params": JSON, "idempotency_key": HEADER_TEXT}
    )
    items = draw(st.lists(odd_jobs() | keyed | JSON, max_size=5))
    if draw(st.booleans()):
        return json.dumps({"jobs": items}).encode()
    return json.dumps({"jobs": items}, ensure_ascii=False).encode("utf-8", "surrogatepass")


@given(body=batch_bodies(), content_type=st.sampled_from(CONTENT_TYPES))
@FUZZ
def test_no_batch_answers_5xx_and_a_refused_job_writes_nothing(
    api: Api, body: bytes, content_type: str | None
) -> None:
    # Given any batch body under any Content-Type / When it is POSTed to /jobs/batch
    headers = {} if content_type is None else {"content-type": content_type}
    jobs_before, messages_before, _ = api.footprint()
    status, answer = api.check("POST", "/jobs/batch", body, headers)
    # Then the request is answered or refused with a 4xx, never a server error
    assert status in {200, 400, 413, 415, 422}
    if status != 200:
        return
    # And each job is answered in its place; only accepted ones reach the queue, and the table
    # grows by at most a job and its key per accepted job
    results = json.loads(answer)["results"]
    assert len(results) == len(json.loads(body)["jobs"])
    assert all(r["status"] in {202, 409, 413, 422} for r in results)
    accepted = sum(1 for r in results if r["status"] == 202)
    jobs_after, messages_after, _ = api.footprint()
    assert messages_after - messages_before <= accepted
    assert jobs_after - jobs_before <= 2 * accepted


@given(
    query=st.dictionaries(
        st.sampled_from(["status", "type", "limit", "cursor", "other"]),
        st.text(max_size=60) | st.integers(-5, 500).map(str),
        max_size=4,
    )
)
@FUZZ
def test_no_query_makes_the_listing_fail(api: Api, query: dict[str, str]) -> None:
    # Given any query string / When the jobs are listed
    status, _ = api.check("GET", "/jobs?" + urllib.parse.urlencode(query), None, {})
    # Then the answer is a page or a 4xx, never a server error
    assert status in {200, 400, 422}
