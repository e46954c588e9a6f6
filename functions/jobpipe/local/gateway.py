"""A local API Gateway (HTTP API, payload format 2.0) in front of the real Lambda handlers.

Each HTTP request becomes the event API Gateway would send (`rawPath`, `rawQueryString`,
lower-cased `headers`, `cookies`, `requestContext.http`, `routeKey`, stage `$default`, the body,
base64-encoded when it is not text), and the handler's answer is mapped back the way API Gateway
maps it: `statusCode`, `headers`, `cookies` as `Set-Cookie`, a base64 body decoded, and an answer
with no `statusCode` taken as a 200 JSON body. A handler that raises is a `500` with API Gateway's
own body, as on AWS.

Each function has its own lock: a Lambda execution environment serves one request at a time, and
the Powertools resolver keeps the current event on the function's (module-level) app.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from jobpipe.local.event_source import LambdaContext
from jobpipe.topology import TOPOLOGY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Handler = Callable[[dict[str, Any], Any], Any]

# API Gateway HTTP APIs refuse request payloads over 10 MB before any Lambda runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LOCAL_CONFIG_PATH = "/_local/config"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
UI_PATH = "/ui"
_log = logging.getLogger(__name__)
_TEXT_TYPES = re.compile(r"^(text/|application/([\w.+-]+\+)?(json|xml|x-www-form-urlencoded))")
# Swagger UI's assets, served from the copy Powertools ships (a locked dependency), so that
# /docs works offline; the page names nothing outside this gateway (no validator badge either).
SWAGGER_UI_PACKAGE = "aws_lambda_powertools.event_handler.openapi.swagger_ui"
DOCS_ASSETS = {
    f"{DOCS_PATH}/swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
    f"{DOCS_PATH}/swagger-ui-bundle.js": (
        "swagger-ui-bundle.min.js",
        "text/javascript; charset=utf-8",
    ),
}
_SWAGGER_UI = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>jobpipe API (local)</title>
<link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{OPENAPI_PATH}", dom_id: "#ui", validatorUrl: null}});</script>
</body></html>
"""


@dataclass(frozen=True)
class Route:
    """One HTTP API route: `GET /jobs/{id}` matches `/jobs/<anything without a slash>`."""

    method: str
    path: str
    handler: Handler
    function_name: str
    timeout_seconds: float = TOPOLOGY.api.function_timeout_seconds

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def default_routes() -> list[Route]:
    """The stack's routes (`jobpipe.api.routes`) and the real handlers behind them."""
    import importlib

    from jobpipe.api.routes import ROUTES, function

    routes = []
    for spec in ROUTES:
        serving = function(spec.function)
        module = importlib.import_module(serving.module)
        routes.append(Route(spec.method, spec.path, module.handler, serving.local_name))
    return routes


def _is_text(content_type: str) -> bool:
    return not content_type or bool(_TEXT_TYPES.match(content_type.lower()))


def http_api_event(
    request: Request, route: Route | None, path_parameters: dict[str, str] | None
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event for `request`. A bearer JWT's claims are
    passed on as API Gateway's JWT authorizer passes them (so callers can be told apart
    locally); they are not verified here — on AWS the authorizer verifies them. Without one the
    request has no authorizer context: the handlers refuse it (403), unless the process names a
    local principal (`JOBPIPE_LOCAL_PRINCIPAL`), as the local stack does."""
    raw = request.get_data(cache=True)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.lower() == "cookie":
            continue
        key = name.lower()
        # API Gateway joins repeated headers with commas.
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
    now = datetime.now(UTC)
    route_key = route.route_key if route else "$default"
    host = request.host
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query_string.decode("latin-1"),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("user-agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("="),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    claims = _bearer_claims(request.headers.get("authorization", ""))
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    cookies = request.headers.get("cookie")
    if cookies:
        event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
    query: dict[str, str] = {}
    for name, values in request.args.lists():
        query[name] = ",".join(values)
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if raw:
        text: str | None = None
        if _is_text(request.headers.get("content-type", "")):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(raw).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def _bearer_claims(authorization: str) -> dict[str, Any] | None:
    """The claims of `Bearer <header>.<payload>.<signature>`, or None."""
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def http_response(answer: Any) -> Response:
    """Map a Lambda proxy answer (payload 2.0) to an HTTP response, as API Gateway does."""
    if not isinstance(answer, dict) or "statusCode" not in answer:
        # Format 2.0 infers the response from any JSON value without a statusCode.
        return Response(json.dumps(answer), status=200, content_type="application/json")
    body = answer.get("body") or ""
    data: bytes = (
        base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    )
    response = Response(data, status=int(answer["statusCode"]))
    response.headers.remove("content-type")
    for name, value in (answer.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for cookie in answer.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    if "content-type" not in response.headers:
        response.headers["Content-Type"] = "application/json"
    return response


@functools.cache
def _docs_asset(name: str) -> bytes:
    return (importlib.resources.files(SWAGGER_UI_PACKAGE) / name).read_bytes()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers
    )


class Gateway:
    """A WSGI application: the HTTP API's routes, the OpenAPI document, and (for the CLI) the
    local stack's configuration."""

    def __init__(
        self,
        routes: Iterable[Route] | None = None,
        *,
        local_config: Callable[[], dict[str, Any]] | None = None,
        on_request: Callable[[str, str, int, float], None] | None = None,
        ui: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]] | None = None,
    ) -> None:
        self.routes = list(routes) if routes is not None else default_routes()
        # The operator's dashboard at /ui (the local stack's only: never a route of the API).
        self.ui = ui
        self._locks = {route.function_name: threading.Lock() for route in self.routes}
        self._local_config = local_config
        self._on_request = on_request

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.ui is not None and (path == UI_PATH or path.startswith(f"{UI_PATH}/")):
            return iter(self.ui(environ, start_response))
        request = Request(environ)
        request.max_content_length = MAX_PAYLOAD_BYTES
        started = time.perf_counter()
        response = self.dispatch(request)
        if self._on_request is not None:
            self._on_request(
                request.method, request.path, response.status_code, time.perf_counter() - started
            )
        return iter(response(environ, start_response))

    def dispatch(self, request: Request) -> Response:
        try:
            request.get_data(cache=True)
        except RequestEntityTooLarge:
            return _json(413, {"message": "Request Entity Too Large"})
        if request.method == "GET" and request.path == OPENAPI_PATH:
            from jobpipe.api.app import openapi_document

            return _json(200, openapi_document())
        if request.method == "GET" and request.path == DOCS_PATH:
            return Response(_SWAGGER_UI, content_type="text/html; charset=utf-8")
        if request.method == "GET" and request.path in DOCS_ASSETS:
            name, content_type = DOCS_ASSETS[request.path]
            return Response(_docs_asset(name), content_type=content_type)
        if request.method == "GET" and request.path == LOCAL_CONFIG_PATH and self._local_config:
            return _json(200, self._local_config())
        for route in self.routes:
            parameters = route.match(request.method, request.path)
            if parameters is not None:
                return self.invoke(route, request, parameters)
        return _json(404, {"message": "Not Found"})

    def invoke(self, route: Route, request: Request, parameters: dict[str, str]) -> Response:
        event = http_api_event(request, route, parameters)
        context = LambdaContext(route.function_name, route.timeout_seconds)
        with self._locks[route.function_name]:
            try:
                answer = route.handler(event, context)
            except Exception:  # noqa: BLE001  (API Gateway answers 500 whatever the Lambda raised)
                _log.exception("%s raised", route.function_name)
                return _json(500, {"message": "Internal Server Error"})
        return http_response(answer)
