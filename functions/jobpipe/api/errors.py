"""The one place where errors become HTTP responses. No traceback or AWS error text ever
reaches a client: unexpected errors are logged and answered with a plain 500."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from jobpipe import errors as e

STATUS_BY_ERROR: tuple[tuple[type[e.JobError], int], ...] = (
    (e.MalformedRequestError, 400),
    (e.InvalidJobIdError, 400),
    (e.UnidentifiedCallerError, 403),
    (e.JobNotFoundError, 404),
    (e.IdempotencyConflictError, 409),
    (e.JobFinishedError, 409),
    (e.RequestTooLargeError, 413),
    (e.UnsupportedMediaTypeError, 415),
    (e.InvalidRequestError, 422),
    (e.ServiceUnavailableError, 503),
    # The table or the queue failed under any route: retry.
    (e.StoreError, 503),
    (e.QueueError, 503),
    (e.SchedulerError, 503),
)

# Seconds a client should wait before retrying a 503.
RETRY_AFTER_UNAVAILABLE = 1


def error_body(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message, **extra}}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers=headers or {},
    )


def error_response(error: e.JobError) -> Response[Any]:
    if isinstance(error, e.StoreError | e.QueueError | e.SchedulerError):
        # Its own message names the AWS operation and error code: not for the caller.
        error = e.ServiceUnavailableError("a dependency is unavailable; retry")
    status = next((code for cls, code in STATUS_BY_ERROR if isinstance(error, cls)), 500)
    if status == 500:
        return internal_error_response()
    extra: dict[str, Any] = {}
    if isinstance(error, e.InvalidRequestError) and error.fields:
        extra["fields"] = error.fields
    if isinstance(error, e.UnknownJobTypeError):
        extra["known_types"] = error.known
    headers = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)} if status == 503 else None
    return json_response(status, error_body(type(error).__name__, str(error), **extra), headers)


def internal_error_response() -> Response[Any]:
    return json_response(500, error_body("InternalError", "internal error"))


def validation_error_response(errors: list[dict[str, Any]]) -> Response[Any]:
    """Map a Powertools request-validation failure: a malformed id or broken JSON is a 400,
    the rest 422."""
    if any(tuple(err.get("loc", ()))[:1] == ("path",) for err in errors):
        return error_response(e.InvalidJobIdError("a job id is a 26-character ULID"))
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(e.MalformedRequestError("request body is not valid JSON"))
    if any(
        err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",) for err in errors
    ):
        return error_response(e.MalformedRequestError("request body is empty; send a JSON object"))
    fields = [
        {
            "loc": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "msg": str(err.get("msg", "invalid")),
        }
        for err in errors
    ]
    return error_response(e.InvalidRequestError("request does not match the schema", fields))
