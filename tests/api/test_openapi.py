"""The OpenAPI document describes what the API does: the headers it answers with, the job ids it
takes and how callers authenticate."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobpipe.api.app import openapi_document
from jobpipe.domain.job import check_job_id, new_job_id
from jobpipe.errors import InvalidJobIdError

ULID_PATTERN = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def _header(document: dict[str, Any], path: str, method: str, status: str, name: str) -> Any:
    return document["paths"][path][method]["responses"][status].get("headers", {}).get(name)


def test_an_accepted_job_documents_its_location_header(document: dict[str, Any]) -> None:
    # Given the document / Then a 202 says it carries Location, the job's path
    location = _header(document, "/jobs", "post", "202", "Location")
    assert location is not None and location["schema"]["type"] == "string"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [("/jobs/{id}", "get", "200"), ("/jobs", "post", "503")],
)
def test_retry_after_is_documented_where_the_api_sends_it(
    document: dict[str, Any], path: str, method: str, status: str
) -> None:
    # Given the answers that carry Retry-After (a job not yet terminal, an unavailable service)
    retry_after = _header(document, path, method, status, "Retry-After")
    # Then the document says so, in seconds
    assert retry_after is not None and retry_after["schema"]["type"] == "integer"


def test_the_job_id_parameter_carries_the_ulid_pattern(document: dict[str, Any]) -> None:
    # Given the status route's path parameter / Then it is a ULID by pattern
    [parameter] = document["paths"]["/jobs/{id}"]["get"]["parameters"]
    assert parameter["in"] == "path" and parameter["schema"]["pattern"] == ULID_PATTERN


@given(
    st.from_regex(ULID_PATTERN, fullmatch=True)
    | st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz-_", min_size=24, max_size=28)
    | st.builds(new_job_id)
)
def test_the_documented_pattern_accepts_exactly_the_ids_the_api_accepts(candidate: str) -> None:
    # Given any candidate id / Then the documented pattern and the API agree on it
    try:
        check_job_id(candidate)
        accepted = True
    except InvalidJobIdError:
        accepted = False
    assert (re.fullmatch(ULID_PATTERN, candidate) is not None) is accepted


def test_every_route_is_secured_by_sigv4_or_a_jwt(document: dict[str, Any]) -> None:
    # Given the document's security schemes
    schemes = document["components"]["securitySchemes"]
    # Then SigV4 (IAM, the default) is named by API Gateway's own extension, and a JWT is the
    # alternative a stack deployed with an issuer takes
    assert schemes["sigv4"]["type"] == "apiKey"
    assert schemes["sigv4"]["in"] == "header" and schemes["sigv4"]["name"] == "Authorization"
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert schemes["jwt"] == {**schemes["jwt"], "type": "http", "scheme": "bearer"}
    # And the whole API requires one of them
    assert document["security"] == [{"sigv4": []}, {"jwt": []}]
