"""The HTTP API as Powertools resolvers: each route's operation, validation, OpenAPI, errors.

The routes are declared in `jobpipe.api.routes`; each Lambda builds a resolver with only its
function's routes (`resolver_for`), and `openapi_document` one with all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, HTTPBearer, SecurityScheme
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseHeader,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobpipe.api.bodies import (
    BatchItemBody,
    BatchSubmittedBody,
    ErrorBody,
    ErrorDetail,
    JobBody,
    JobListBody,
    SubmittedBody,
    WorkflowBody,
    iso,
    job_body,
    workflow_body,
)
from jobpipe.api.errors import (
    error_response,
    internal_error_response,
    json_response,
    validation_error_response,
)
from jobpipe.api.identity import caller_of
from jobpipe.api.routes import ROUTES, RouteSpec, route, routes_of
from jobpipe.domain.job import (
    JOB_ID_PATTERN,
    MAX_AHEAD_SECONDS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    Job,
    canonical_json,
)
from jobpipe.errors import (
    InvalidRequestError,
    JobError,
    MalformedRequestError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from jobpipe.observability import logger
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from jobpipe.workflow.service import WorkflowState

API_TITLE = "jobpipe"
# The one media type POST /jobs takes (RFC 8259). Parameters are allowed and ignored: JSON has
# no charset parameter, and the body is read as UTF-8 whatever one says.
JSON_MEDIA_TYPE = "application/json"
# A `\uD800`-`\uDFFF` escape, or such a code point itself: the only ways a parsed body can
# hold half of a surrogate pair, which no UTF-8 text (and so no DynamoDB string) can carry.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


class SubmitJobBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="A declared job type.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters, validated by the job type's model."
    )
    # Bounds checked by the submit service, whose 422 says what a year is.
    delay_seconds: float | None = Field(
        default=None,
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"minimum": 0, "maximum": MAX_AHEAD_SECONDS},
        description="Run the job this many seconds from now (at most a year); it is "
        "`scheduled` until then. Not with `run_at`.",
    )
    # Text, checked by the submit service (a JSON number is not a time here).
    run_at: str | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description="Run the job at this time: RFC 3339 with an offset, e.g. "
        "`2026-05-01T09:00:00+02:00`; a time already past runs now, more than a year ahead is "
        "refused. Not with `delay_seconds`.",
    )


class SubmitBatchItem(SubmitJobBody):
    """A job of a batch: the single submit's body, and its own optional Idempotency-Key."""

    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        description="As the Idempotency-Key header of a single submit: same key and job, the "
        "same job.",
    )


class SubmitBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(
        min_length=1,
        max_length=TOPOLOGY.api.max_batch_jobs,
        description="Each a `POST /jobs` body with an optional `idempotency_key`; each "
        "validated on its own (an invalid one is answered in its place, not refused with the "
        "request).",
        # Built only with the OpenAPI document, never at a cold start.
        json_schema_extra=lambda schema: schema.update(items=SubmitBatchItem.model_json_schema()),
    )


NO_CALLER = "The request names no caller: no IAM principal, no JWT subject."


def _response(
    description: str,
    model: type[BaseModel],
    headers: dict[str, OpenAPIResponseHeader] | None = None,
) -> OpenAPIResponse:
    response: OpenAPIResponse = {
        "description": description,
        "content": {"application/json": {"model": model}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> OpenAPIResponse:
    return _response(description, ErrorBody)


def _retry_after(when: str) -> dict[str, OpenAPIResponseHeader]:
    return {
        "Retry-After": {
            "description": f"Seconds to wait before asking again; {when}.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }


LOCATION: dict[str, OpenAPIResponseHeader] = {
    "Location": {
        "description": "The job's path, `/jobs/{job_id}`: where to poll it.",
        "schema": {"type": "string", "example": "/jobs/01M87B9V0WJJC08YS7ZKQFYJ98"},
    }
}
UNAVAILABLE = _response(
    "A dependency is unavailable; retry with the same Idempotency-Key.",
    ErrorBody,
    _retry_after("always present"),
)
# API Gateway authorizes every route with IAM (SigV4), or with a JWT when the stack is deployed
# with `-c jwtIssuer=...`. OpenAPI has no SigV4 type: API Gateway's own extension names it.
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "sigv4": APIKey.model_validate(
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "AWS Signature Version 4 by an IAM principal allowed "
            "execute-api:Invoke (the default). The job owner is the principal; for an assumed "
            "role, the role without its session name.",
            "openapi_extensions": {"x-amazon-apigateway-authtype": "awsSigv4"},
        }
    ),
    "jwt": HTTPBearer(
        bearerFormat="JWT",
        description="A JWT from the issuer the stack was deployed with (-c jwtIssuer=...), "
        "instead of SigV4. The job owner is the token's issuer and sub.",
    ),
}
SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}, {"jwt": []}]


# --- the operations, by name (see jobpipe.api.routes) -----------------------------------------


def _submit_job(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Submit a job",
        description="Writes the job and queues it; answers at once with the job id to poll. "
        "With `delay_seconds` or `run_at` the job is `scheduled` and runs at its time.",
        status_code=202,
        responses={
            202: _response(
                "Accepted: the job is pending (or scheduled, when delayed).",
                SubmittedBody,
                LOCATION,
            ),
            400: _error("The body is not valid JSON (or not Unicode: an unpaired surrogate)."),
            403: _error(NO_CALLER),
            409: _error("The Idempotency-Key was used with a different body."),
            413: _error("The body is over the size limit."),
            415: _error(
                "The body is not sent as `application/json` (the media type in any case, "
                "parameters allowed); forms, multipart and look-alikes are refused unread."
            ),
            422: _error(
                "Unknown job type, invalid params, or a delay that is not 0 s to a year ahead "
                "(a `run_at` without an offset, both `delay_seconds` and `run_at`); names the "
                "fields."
            ),
            503: UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def submit(
        body: Annotated[SubmitJobBody, Body()],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="idempotency-key",
                min_length=1,
                max_length=MAX_IDEMPOTENCY_KEY_CHARS,
                description="Same key and body: the same job. Keys are per caller.",
            ),
        ] = None,
    ) -> Response[dict[str, Any]]:
        from jobpipe.wiring import submit_service

        event = router.current_event
        submitted = submit_service().submit(
            _submit_request(body, owner_of(event.raw_event), idempotency_key)
        )
        job = submitted.job
        location = route("get_job").url(id=job.job_id)
        return json_response(
            202,
            _submitted_body(event.raw_event, job).model_dump(exclude_none=True),
            {"Location": location},
        )


def _submitted_body(event: dict[str, Any], job: Job) -> SubmittedBody:
    return SubmittedBody(
        job_id=job.job_id,
        type=job.type,
        status=job.status.value,
        created_at=iso(job.created_at) or "",
        poll_url=_absolute(event, route("get_job").url(id=job.job_id)),
        run_at=iso(job.run_at),
    )


def _submit_jobs(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Submit many jobs",
        description=f"Up to {TOPOLOGY.api.max_batch_jobs} jobs in one request, each answered in "
        "its place, in order: 202 with the job, or the error it would get alone (a refused job "
        "writes nothing). A job answered 503 was not queued: send it again (with its "
        "`idempotency_key`, the same job).",
        responses={
            200: _response("One answer per job, in order.", BatchSubmittedBody),
            400: _error("The body is not valid JSON."),
            403: _error(NO_CALLER),
            413: _error(
                f"The body is over {TOPOLOGY.api.max_batch_body_bytes} bytes "
                "(a job over the single submit's limit is answered 413 in its place)."
            ),
            415: _error("The body is not sent as `application/json`."),
            422: _error(f"No `jobs`, or more than {TOPOLOGY.api.max_batch_jobs}."),
            503: UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def submit_jobs(body: Annotated[SubmitBatchBody, Body()]) -> Response[dict[str, Any]]:
        from jobpipe.wiring import submit_service

        event = router.current_event.raw_event
        owner = owner_of(event)
        items = [_batch_item(raw) for raw in body.jobs]
        answers = iter(
            submit_service().submit_many(
                [
                    _submit_request(item, owner, item.idempotency_key)
                    for item in items
                    if isinstance(item, SubmitBatchItem)
                ]
            )
        )
        # In order: each valid job's answer from the service, each invalid one's refusal.
        results = [
            _batch_answer(event, next(answers) if isinstance(item, SubmitBatchItem) else item)
            for item in items
        ]
        return json_response(200, BatchSubmittedBody(results=results).model_dump(mode="json"))


def _batch_item(raw: Any) -> SubmitBatchItem | JobError:
    """A batch's job validated as the single submit validates its body."""
    from jobpipe.settings import get_settings

    if not isinstance(raw, dict):
        return InvalidRequestError(
            "request does not match the schema", [{"loc": "", "msg": "a job is a JSON object"}]
        )
    size = len(canonical_json(raw).encode("utf-8", "surrogatepass"))
    limit = get_settings().max_body_bytes
    if size > limit:
        return RequestTooLargeError(size, limit)
    try:
        return SubmitBatchItem.model_validate(raw)
    except ValidationError as error:
        fields = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": str(err["msg"])}
            for err in error.errors()
        ]
        return InvalidRequestError("request does not match the schema", fields)


def _batch_answer(event: dict[str, Any], outcome: Any) -> BatchItemBody:
    if isinstance(outcome, JobError):
        response = error_response(outcome)
        detail = ErrorDetail.model_validate(cast(dict[str, Any], response.body)["error"])
        return BatchItemBody(status=response.status_code, error=detail)
    return BatchItemBody(status=202, job=_submitted_body(event, outcome.job))


def _submit_request(body: SubmitJobBody, owner: str, idempotency_key: str | None) -> Any:
    """The submit service's request for a job's body: one place for the single submit and each
    job of a batch."""
    from jobpipe.submit.service import SubmitRequest

    return SubmitRequest(
        owner=owner,
        type=body.type,
        params=body.params,
        idempotency_key=idempotency_key,
        delay_seconds=body.delay_seconds,
        run_at=body.run_at,
    )


JOB_ID = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, description="A job id: a ULID, in either case.")
]


def _get_job(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Get a job's status",
        description="Poll until `is_terminal`; honour `Retry-After`.",
        responses={
            200: _response(
                "The job.", JobBody, _retry_after("present while the job is not terminal")
            ),
            400: _error("Not a job id."),
            403: _error(NO_CALLER),
            404: _error("No such job (or not the caller's)."),
            503: UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def get_job(id: JOB_ID) -> Response[dict[str, Any]]:
        from jobpipe.wiring import status_service

        service = status_service()
        job = service.get(owner_of(router.current_event.raw_event), id)
        return _job_response(job, service.retry_after(job))


def _cancel_job(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Cancel a job",
        description="A job not running ends `cancelled` at once, and its message is dropped "
        "unrun when it arrives. A running job is asked to stop (`cancel_requested`): it ends "
        "`cancelled` when its code next checks, or when its attempt fails or is cut off. "
        "Cancelling a cancelled job answers it again.",
        responses={
            200: _response("The job after the cancel.", JobBody),
            400: _error("Not a job id."),
            403: _error(NO_CALLER),
            404: _error("No such job (or not the caller's)."),
            409: _error("The job has already succeeded or failed."),
            503: UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def cancel_job(id: JOB_ID) -> Response[dict[str, Any]]:
        from jobpipe.wiring import cancel_service, status_service

        job = cancel_service().cancel(owner_of(router.current_event.raw_event), id)
        return _job_response(job, status_service().retry_after(job))


WORKFLOW_ID = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, description="A workflow id: a ULID, in either case.")
]
WORKFLOW_TREE_DESCRIPTION = (
    "A chain, group or chord of steps; a step is `{type, params}` or another tree:\n\n"
    '- `{"chain": [step, ...]}`: each step receives the previous result under `params.input`;\n'
    '- `{"group": [step, ...]}`: the steps run at once; its result is their results, in order;\n'
    '- `{"chord": {"header": [step, ...], "body": step}}`: the body receives the header\'s '
    'results.\n\nA group or chord with `"continue_on_failure": true` goes on whatever its '
    "members' outcomes, and what follows receives each outcome instead of the result."
)
WORKFLOW_LOCATION: dict[str, OpenAPIResponseHeader] = {
    "Location": {
        "description": "The workflow's path, `/workflows/{workflow_id}`: where to poll it.",
        "schema": {"type": "string", "example": "/workflows/01M87B9V0WJJC08YS7ZKQFYJ98"},
    }
}


def _submit_workflow(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Submit a workflow",
        description="Writes every step as a job (the first ones `pending`, the rest "
        "`waiting`) and queues the first ones; answers at once with the workflow to poll. "
        "After a 503, retry with the same Idempotency-Key: the retry finishes the creation "
        "(and without a key, the reaper finishes it).",
        status_code=202,
        responses={
            202: _response("Accepted: the workflow is running.", WorkflowBody, WORKFLOW_LOCATION),
            400: _error("The body is not valid JSON (or not Unicode: an unpaired surrogate)."),
            403: _error(NO_CALLER),
            409: _error("The Idempotency-Key was used with a different body."),
            413: _error("The body is over the size limit, or the tree has too many steps."),
            415: _error("The body is not sent as `application/json`."),
            422: _error(
                "Not a chain, group or chord; an unknown job type or invalid params. The "
                "message and `fields` name the node's path, such as `chord.header[3].params`."
            ),
            503: UNAVAILABLE,
        },
        tags=["workflows"],
    )
    def submit_workflow(
        body: Annotated[dict[str, Any], Body(description=WORKFLOW_TREE_DESCRIPTION)],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="idempotency-key",
                min_length=1,
                max_length=MAX_IDEMPOTENCY_KEY_CHARS,
                description="Same key and body: the same workflow. Keys are per caller.",
            ),
        ] = None,
    ) -> Response[dict[str, Any]]:
        from jobpipe.wiring import workflow_submit_service
        from jobpipe.workflow.service import WorkflowRequest

        state = workflow_submit_service().submit(
            WorkflowRequest(
                owner=owner_of(router.current_event.raw_event),
                tree=body,
                idempotency_key=idempotency_key,
            )
        )
        location = route("get_workflow").url(id=state.workflow.workflow_id)
        body = workflow_body(state)
        body["poll_url"] = _absolute(router.current_event.raw_event, location)
        return json_response(202, body, {"Location": location})


def _get_workflow(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Get a workflow's status",
        description="Its tree with each step's job and status; poll until `is_terminal`.",
        responses={
            200: _response(
                "The workflow.",
                WorkflowBody,
                _retry_after("present while the workflow is not terminal"),
            ),
            400: _error("Not a workflow id."),
            403: _error(NO_CALLER),
            404: _error("No such workflow (or not the caller's)."),
            503: UNAVAILABLE,
        },
        tags=["workflows"],
    )
    def get_workflow(id: WORKFLOW_ID) -> Response[dict[str, Any]]:
        from jobpipe.wiring import workflow_service

        state = workflow_service().get(owner_of(router.current_event.raw_event), id)
        return _workflow_response(200, state)


def _cancel_workflow(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="Cancel a workflow",
        description="Cancels every step not yet finished (a running one is asked to stop); "
        "the workflow ends `cancelled` unless it had already ended. Cancelling it again "
        "answers it again.",
        responses={
            200: _response("The workflow after the cancel.", WorkflowBody),
            400: _error("Not a workflow id."),
            403: _error(NO_CALLER),
            404: _error("No such workflow (or not the caller's)."),
            409: _error("The workflow has already succeeded."),
            503: UNAVAILABLE,
        },
        tags=["workflows"],
    )
    def cancel_workflow(id: WORKFLOW_ID) -> Response[dict[str, Any]]:
        from jobpipe.wiring import workflow_service

        state = workflow_service().cancel(owner_of(router.current_event.raw_event), id)
        return _workflow_response(200, state)


def _list_jobs(router: Router, spec: RouteSpec) -> None:
    @router.route(
        spec.resolver_path,
        method=spec.method,
        operation_id=spec.operation,
        summary="List the caller's jobs",
        description="Newest first, a page at a time. `status` (one or more, comma-separated) and "
        "`type` combine. A page may hold fewer than `limit` jobs, even none, and still have a "
        "`next_cursor`: pass it back (with the same filters) for the next page.",
        responses={
            200: _response("A page of jobs.", JobListBody),
            400: _error("A cursor not given to this caller for these filters."),
            403: _error(NO_CALLER),
            422: _error("An unknown status, or a limit out of range."),
            503: UNAVAILABLE,
        },
        tags=["jobs"],
    )
    def list_jobs(
        status: Annotated[
            str | None,
            Query(description="Only jobs in these states: `failed` or `failed,cancelled`."),
        ] = None,
        type: Annotated[str | None, Query(max_length=64, description="Only this type.")] = None,
        limit: Annotated[
            int,
            Query(ge=1, le=TOPOLOGY.api.max_list_limit, description="Jobs a page, at most."),
        ] = TOPOLOGY.api.default_list_limit,
        cursor: Annotated[
            str | None, Query(max_length=512, description="From the previous page.")
        ] = None,
    ) -> Response[dict[str, Any]]:
        from jobpipe.status.listing import ListRequest
        from jobpipe.wiring import list_service

        listing = list_service().list(
            ListRequest(
                owner=owner_of(router.current_event.raw_event),
                status=status,
                type=type or None,
                limit=limit,
                cursor=cursor or None,
            )
        )
        body: dict[str, Any] = {
            "jobs": [job_body(job, with_result=False) for job in listing.page.jobs]
        }
        if listing.next_cursor is not None:
            body["next_cursor"] = listing.next_cursor
        return json_response(200, body)


OPERATIONS: dict[str, Callable[[Router, RouteSpec], None]] = {
    "submit_job": _submit_job,
    "get_job": _get_job,
    "cancel_job": _cancel_job,
    "submit_workflow": _submit_workflow,
    "get_workflow": _get_workflow,
    "cancel_workflow": _cancel_workflow,
    "list_jobs": _list_jobs,
    "submit_jobs": _submit_jobs,
}


def _workflow_response(status: int, state: WorkflowState) -> Response[Any]:
    retry_after = state.retry_after()
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return json_response(status, workflow_body(state), headers)


def _job_response(job: Job, retry_after: int | None) -> Response[Any]:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return json_response(200, job_body(job), headers)


def router_for(specs: tuple[RouteSpec, ...]) -> Router:
    router = Router()
    for spec in specs:
        OPERATIONS[spec.operation](router, spec)
    return router


def resolver_for(function_name: str) -> APIGatewayHttpResolver:
    """The resolver of one function: its routes only."""
    return build_resolver(router_for(routes_of(function_name)))


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading a body only when it is sent as JSON.

    Powertools would parse form and multipart bodies into the route's model itself (and raise a
    bare ValueError for a multipart type without a boundary), and it matches `application/json`
    by prefix and case. Here, where it reads the body, an oversized body is refused first
    (413), then any body not sent as `application/json` (415), before anything parses it."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event.raw_event
        check_body_size(event)
        check_media_type(event)
        return self._parse_json_data(app)


def build_resolver(*routers: Router) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    # Powertools runs its request validation ahead of every middleware and offers no hook before
    # it, so its body reading is the one replaced.
    app._request_validation_middleware = JsonBodyValidation()
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    def on_invalid(error: RequestValidationError) -> Response[Any]:
        return validation_error_response(list(error.errors()))

    @app.exception_handler(UnicodeDecodeError)
    def on_not_text(_: UnicodeDecodeError) -> Response[Any]:
        return error_response(MalformedRequestError("request body is not UTF-8 JSON"))

    @app.exception_handler(RecursionError)
    def on_too_deep(_: RecursionError) -> Response[Any]:
        # JSON nested thousands deep exhausts the parser before any validation runs.
        return error_response(MalformedRequestError("request body is nested too deeply"))

    @app.exception_handler(JobError)
    def on_job_error(error: JobError) -> Response[Any]:
        return error_response(error)

    @app.exception_handler(Exception)
    def on_unexpected(error: Exception) -> Response[Any]:
        logger.exception("unhandled error", error_type=type(error).__name__)
        return internal_error_response()

    @app.not_found
    def not_found(_: Exception) -> Response[Any]:
        return json_response(404, {"error": {"type": "NotFound", "message": "no such route"}})

    return app


def owner_of(event: dict[str, Any]) -> str:
    """Who owns the jobs this request submits or reads (403 when it names no one)."""
    from jobpipe.settings import get_settings

    return caller_of(event.get("requestContext") or {}, get_settings().local_principal)


def check_body_size(event: dict[str, Any]) -> None:
    from jobpipe.settings import get_settings

    limit = get_settings().max_body_bytes
    if event.get("routeKey") == route("submit_jobs").route_key:
        limit = max(limit, TOPOLOGY.api.max_batch_body_bytes)
    body = event.get("body") or ""
    size = len(body.encode("utf-8", "surrogatepass")) if isinstance(body, str) else len(body)
    if event.get("isBase64Encoded"):
        size = (size * 3) // 4
    if size > limit:
        raise RequestTooLargeError(size, limit)


def media_type_of(event: dict[str, Any]) -> str | None:
    """The request's media type, lower-cased and without parameters (RFC 9110: type and subtype
    are case-insensitive), or None when it has no Content-Type."""
    headers = event.get("headers") or {}
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if value is None:
        return None
    return str(value).split(";", 1)[0].strip().lower()


def check_media_type(event: dict[str, Any]) -> None:
    """Refuse a body not sent as `application/json` (none at all included): `Application/JSON;
    charset=utf-8` is JSON, `application/jsonx` and `application/merge-patch+json` are not."""
    if media_type_of(event) != JSON_MEDIA_TYPE:
        raise UnsupportedMediaTypeError(
            f"send the job as JSON with Content-Type: {JSON_MEDIA_TYPE}"
        )


def parse_json_body(text: str) -> Any:
    """The body parsed as JSON; one holding an unpaired UTF-16 surrogate (`"\\ud800"`) is
    malformed: it is not Unicode text and could not be stored."""
    value = json.loads(text)
    if _SURROGATE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedRequestError(
                "request body holds an unpaired UTF-16 surrogate: JSON text must be Unicode"
            ) from None
    return value


def _absolute(event: dict[str, Any], path: str) -> str:
    context = event.get("requestContext") or {}
    host = context.get("domainName")
    if not host:
        return path
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme = headers.get("x-forwarded-proto", "https")
    stage = context.get("stage") or "$default"
    prefix = "" if stage == "$default" else f"/{stage}"
    return f"{scheme}://{host}{prefix}{path}"


def openapi_document() -> dict[str, Any]:
    """The whole API's OpenAPI document (every route)."""
    from jobpipe import __version__

    app = build_resolver(router_for(ROUTES))
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=__version__,
            security_schemes=SECURITY_SCHEMES,
            security=SECURITY,
        )
    )
    return document
