"""The local gateway turns HTTP requests into API Gateway HTTP API (2.0) events and maps the
Lambda's answer back, as API Gateway does."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from werkzeug.test import Client

from jobpipe.local import gateway
from jobpipe.local.gateway import Gateway, Route


class Recorder:
    """A handler that records its events and answers what it is told to."""

    def __init__(self, answer: Any = None, raises: Exception | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer = answer if answer is not None else {"statusCode": 200, "body": "{}"}
        self.raises = raises

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.raises is not None:
            raise self.raises
        return self.answer


def client_for(recorder: Recorder, method: str = "GET", path: str = "/jobs/{id}") -> Client:
    return Client(Gateway([Route(method, path, recorder, "jobpipe-test")]), use_cookies=False)


def test_a_request_becomes_an_http_api_v2_event() -> None:
    # Given a route GET /jobs/{id}
    recorder = Recorder()
    client = client_for(recorder)
    # When a request with a query, mixed-case headers and cookies comes in
    client.get(
        "/jobs/01ABC?verbose=1&tag=a&tag=b",
        headers={"X-Custom-Header": "Value", "Cookie": "a=1; b=2"},
    )
    # Then the handler gets the event API Gateway would send
    [event] = recorder.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /jobs/{id}"
    assert event["rawPath"] == "/jobs/01ABC"
    assert event["rawQueryString"] == "verbose=1&tag=a&tag=b"
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "a,b"}
    assert event["pathParameters"] == {"id": "01ABC"}
    assert event["headers"]["x-custom-header"] == "Value"
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    context = event["requestContext"]
    assert context["http"]["method"] == "GET"
    assert context["http"]["path"] == "/jobs/01ABC"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["routeKey"] == "GET /jobs/{id}"
    assert context["stage"] == "$default"
    assert context["requestId"] and isinstance(context["timeEpoch"], int)
    assert "authorizer" not in context  # no credentials: the local principal, if one is named
    assert event["isBase64Encoded"] is False and "body" not in event
    # And a Lambda context for the route's function
    assert recorder.contexts[0].function_name == "jobpipe-test"
    assert recorder.contexts[0].get_remaining_time_in_millis() > 0


def test_a_json_body_is_passed_as_text() -> None:
    recorder = Recorder()
    client_for(recorder, "POST", "/jobs").post("/jobs", json={"type": "echo"})
    [event] = recorder.events
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"type": "echo"}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"\x89PNG\x00\xff", "image/png"), (b"\xff\xfe{bad utf-8", "application/json")],
)
def test_a_binary_body_is_base64_encoded(data: bytes, content_type: str) -> None:
    recorder = Recorder()
    client_for(recorder, "POST", "/jobs").post("/jobs", data=data, content_type=content_type)
    [event] = recorder.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data


def test_the_answer_is_mapped_back_with_headers_cookies_and_status() -> None:
    recorder = Recorder(
        {
            "statusCode": 202,
            "headers": {"Location": "/jobs/1", "Content-Type": "application/json"},
            "cookies": ["session=x; HttpOnly", "theme=dark"],
            "body": '{"ok": true}',
            "isBase64Encoded": False,
        }
    )
    response = client_for(recorder, "POST", "/jobs").post("/jobs", json={})
    assert response.status_code == 202
    assert response.headers["Location"] == "/jobs/1"
    assert response.headers.getlist("Set-Cookie") == ["session=x; HttpOnly", "theme=dark"]
    assert response.get_json() == {"ok": True}


def test_a_base64_answer_is_decoded() -> None:
    recorder = Recorder(
        {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    response = client_for(recorder).get("/jobs/1")
    assert response.data == b"\x89PNG" and response.headers["content-type"] == "image/png"


def test_an_answer_without_status_code_is_a_200_json_body() -> None:
    response = client_for(Recorder({"hello": "world"})).get("/jobs/1")
    assert response.status_code == 200 and response.get_json() == {"hello": "world"}


def test_a_handler_that_raises_is_a_500_with_no_detail() -> None:
    response = client_for(Recorder(raises=RuntimeError("secret internals"))).get("/jobs/1")
    assert response.status_code == 500
    assert response.get_json() == {"message": "Internal Server Error"}
    assert b"secret" not in response.data


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("DELETE", "/jobs/1"), ("GET", "/jobs/1/x")]
)
def test_no_route_is_api_gateways_404(method: str, path: str) -> None:
    recorder = Recorder()
    response = client_for(recorder).open(path, method=method)
    assert response.status_code == 404 and response.get_json() == {"message": "Not Found"}
    assert recorder.events == []


def test_a_payload_over_the_gateway_limit_is_413_before_any_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway, "MAX_PAYLOAD_BYTES", 1000)
    recorder = Recorder()
    response = client_for(recorder, "POST", "/jobs").post("/jobs", data=b"x" * 1001)
    assert response.status_code == 413 and recorder.events == []


def test_the_real_handlers_answer_through_the_gateway(aws: Any, local_principal: str) -> None:
    # Given the default routes (the real submit and status handlers) on moto, and the local
    # principal named as the local stack names it
    client = Client(Gateway())
    # When a job is submitted and read back
    submitted = client.post("/jobs", json={"type": "echo", "params": {"a": 1}})
    assert submitted.status_code == 202
    job_id = submitted.get_json()["job_id"]
    assert submitted.headers["Location"] == f"/jobs/{job_id}"
    status = client.get(f"/jobs/{job_id}")
    # Then both answer as on AWS, the poll URL pointing back at this gateway
    assert status.status_code == 200 and status.get_json()["status"] == "pending"
    assert status.headers["Retry-After"] == "1"
    assert submitted.get_json()["poll_url"] == f"http://localhost/jobs/{job_id}"


def test_the_docs_page_and_every_asset_it_names_are_served_by_the_gateway() -> None:
    # Given the local gateway (and no network needed)
    client = Client(Gateway([]))
    # When the Swagger UI page is fetched
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    # Then it names no URL outside the gateway: it works offline
    assert not re.search(r"https?:|[\"'(]//", html)
    # And every stylesheet, script and document it names is served by the gateway itself
    references = re.findall(r'(?:href|src|url:)\s*=?\s*"([^"]+)"', html)
    assert {"/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/openapi.json"} <= set(
        references
    )
    for reference in references:
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.data) > 1000, reference
    assert b"SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").data
    assert client.get("/docs/swagger-ui.css").mimetype == "text/css"
