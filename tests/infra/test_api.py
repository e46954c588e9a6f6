"""The HTTP API: the two job routes, never unauthenticated, throttled, access-logged."""

from __future__ import annotations

import json

import pytest
from infra.app import build_app

from jobpipe.topology import TOPOLOGY
from tests.infra.conftest import JWT_AUDIENCE, JWT_ISSUER, Synthesized

pytestmark = pytest.mark.xdist_group("cdk")


def _routes(synthesized: Synthesized) -> dict[str, dict[str, object]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synthesized.resources("AWS::ApiGatewayV2::Route").values()
    }


def test_the_api_serves_the_route_tables_routes_and_nothing_else(
    synthesized: Synthesized,
) -> None:
    """Given the synthesized API, then its only routes are the route table's.

    The handlers serve no OpenAPI route, and a `$default` route would forward anything.
    """
    from jobpipe.api.routes import ROUTES

    assert set(_routes(synthesized)) == {route.route_key for route in ROUTES}


def test_every_route_requires_iam_auth_by_default(synthesized: Synthesized) -> None:
    """Given no JWT context, then every route requires SigV4 (IAM) auth."""
    routes = _routes(synthesized)
    assert routes
    for key, route in routes.items():
        assert route["AuthorizationType"] == "AWS_IAM", key


def test_routes_reach_their_own_functions(synthesized: Synthesized) -> None:
    """Given the routes' integrations, then each reaches its own function (payload format 2.0)."""
    integrations = synthesized.resources("AWS::ApiGatewayV2::Integration").values()
    targets = {json.dumps(i["Properties"]["IntegrationUri"]) for i in integrations}
    for name in ("Submit", "Status"):
        function_id = synthesized.logical_id(f"Functions/{name}")
        assert any(function_id in target for target in targets), name
    for integration in integrations:
        assert integration["Properties"]["PayloadFormatVersion"] == "2.0"


def test_with_a_jwt_issuer_every_route_requires_a_jwt(jwt_synthesized: Synthesized) -> None:
    # Given the jwtIssuer and jwtAudience context values
    (authorizer,) = jwt_synthesized.resources("AWS::ApiGatewayV2::Authorizer").values()
    # Then one JWT authorizer trusts that issuer and audience
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {"Issuer": JWT_ISSUER, "Audience": [JWT_AUDIENCE]}
    # And every route uses it: none is left open
    from jobpipe.api.routes import ROUTES

    routes = _routes(jwt_synthesized)
    assert set(routes) == {route.route_key for route in ROUTES}
    for key, route in routes.items():
        assert route["AuthorizationType"] == "JWT", key


def test_a_jwt_issuer_without_an_audience_is_refused() -> None:
    """Given only jwtIssuer, when the app is built, then it is refused rather than deployed half-
    configured.
    """
    with pytest.raises(ValueError, match="jwtAudience"):
        build_app(context={"jwtIssuer": JWT_ISSUER})


def test_the_stage_throttles_every_route(synthesized: Synthesized) -> None:
    """Given the $default stage, then it deploys automatically and throttles at the topology's
    limits.
    """
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": TOPOLOGY.api.throttle_burst_limit,
        "ThrottlingRateLimit": TOPOLOGY.api.throttle_rate_limit,
    }


def test_every_request_is_access_logged_as_json_with_caller_and_status(
    synthesized: Synthesized,
) -> None:
    """Given the stage, then every request is logged as a JSON line to a log group that expires."""
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    group_id = synthesized.logical_id("Api/AccessLogs")
    assert settings["DestinationArn"] == {"Fn::GetAtt": [group_id, "Arn"]}
    fields = json.loads(settings["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert fields["status"] == "$context.status"
    assert fields["userArn"] == "$context.identity.userArn"
    retention = synthesized.raw["Resources"][group_id]["Properties"]["RetentionInDays"]
    assert retention == TOPOLOGY.log_retention_days
