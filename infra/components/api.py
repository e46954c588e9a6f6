"""The HTTPS job API: the routes of `jobpipe.api.routes` on an API Gateway HTTP API."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.components.functions import log_retention
from jobpipe.api.routes import RouteSpec
from jobpipe.topology import ApiShape


@dataclass(frozen=True)
class JwtAuth:
    """An OIDC issuer whose tokens the API accepts instead of SigV4 (end-user clients)."""

    issuer: str
    audience: tuple[str, ...]


# One JSON line per request, with the HTTP API's own context variables: who called which route,
# what it answered, and whether the authorizer or the integration failed.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userArn": "$context.identity.userArn",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigw.IAccessLogDestination, fmt: apigw_v1.AccessLogFormat):
        self._destination = destination
        self._format = fmt

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


class JobsApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shape: ApiShape,
        routes: Sequence[RouteSpec],
        functions: Mapping[str, lambda_.IFunction],
        log_retention_days: int,
        jwt: JwtAuth | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.HttpApi(
            self,
            "HttpApi",
            description="jobpipe: submit jobs and read their status",
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=shape.throttle_rate_limit, burst_limit=shape.throttle_burst_limit
            ),
            access_log_settings=_AccessLogSettings(
                apigw.LogGroupLogDestination(self.access_logs),
                apigw_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # IAM (SigV4) unless a JWT issuer is configured: a route has exactly one authorizer,
        # and no route is ever left open.
        authorizer: apigw.IHttpRouteAuthorizer
        if jwt is None:
            authorizer = authorizers.HttpIamAuthorizer()
        else:
            authorizer = authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer", jwt.issuer, jwt_audience=list(jwt.audience)
            )
        # Every route of `jobpipe.api.routes`, to the function that serves it: one integration
        # per function.
        integrated: dict[str, integrations.HttpLambdaIntegration] = {}
        for route in routes:
            if route.function not in integrated:
                integrated[route.function] = integrations.HttpLambdaIntegration(
                    f"{route.function}Integration", functions[route.function]
                )
            self.api.add_routes(
                path=route.path,
                methods=[apigw.HttpMethod(route.method)],
                integration=integrated[route.function],
                authorizer=authorizer,
            )

    @property
    def url(self) -> str:
        """The API's base URL (`https://{id}.execute-api.{region}.amazonaws.com/`)."""
        url = self.stage.url
        assert url is not None
        return url
