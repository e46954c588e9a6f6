"""Who owns a request's jobs, from the request contexts API Gateway sends (IAM and JWT)."""

from __future__ import annotations

from typing import Any

import pytest

from jobpipe.api.identity import caller_of
from jobpipe.errors import UnidentifiedCallerError


def iam(user_arn: str | None, user_id: str | None = None) -> dict[str, Any]:
    return {"authorizer": {"iam": {"accountId": "123456789012", "userArn": user_arn,
                                   "userId": user_id}}}  # fmt: skip


@pytest.mark.parametrize(
    ("user_arn", "owner"),
    [
        pytest.param(
            "arn:aws:sts::123456789012:assumed-role/orders/i-0123456789abcdef0",
            "arn:aws:sts::123456789012:assumed-role/orders",
            id="assumed-role",
        ),
        pytest.param(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123abcd/ana@example.com",
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123abcd",
            id="sso-permission-set",
        ),
        pytest.param(
            "arn:aws-cn:sts::123456789012:assumed-role/orders/botocore-session-1",
            "arn:aws-cn:sts::123456789012:assumed-role/orders",
            id="china-partition",
        ),
        pytest.param(
            "arn:aws-us-gov:sts::123456789012:assumed-role/orders/s",
            "arn:aws-us-gov:sts::123456789012:assumed-role/orders",
            id="govcloud-partition",
        ),
    ],
)
def test_an_assumed_roles_owner_is_the_role_without_the_session(user_arn: str, owner: str) -> None:
    # Given a request signed with an assumed role's session / When its owner is read
    # Then it is the role: every session of the role (another task, instance or user) owns alike
    assert caller_of(iam(user_arn, "AROAEXAMPLE:session")) == owner


@pytest.mark.parametrize(
    "user_arn",
    [
        "arn:aws:iam::123456789012:user/ana",
        "arn:aws:iam::123456789012:user/division/ana",
        "arn:aws:iam::123456789012:root",
        "arn:aws:sts::123456789012:federated-user/ana",
    ],
)
def test_other_iam_principals_own_as_their_own_arn(user_arn: str) -> None:
    # Given a request signed by an IAM user, the account root or a federated user
    # Then its owner is its ARN, unchanged
    assert caller_of(iam(user_arn, "AIDAEXAMPLE")) == user_arn


def test_without_an_arn_an_assumed_roles_user_id_owns_without_the_session() -> None:
    # Given an IAM context with a role session's user id but no ARN
    first = caller_of(iam(None, "AROAEXAMPLEROLEID:task-1"))
    second = caller_of(iam(None, "AROAEXAMPLEROLEID:task-2"))
    # Then both sessions are the same owner, the role's id
    assert first == second == "iam:AROAEXAMPLEROLEID"


def test_a_jwt_owner_is_its_issuer_and_subject() -> None:
    context = {"authorizer": {"jwt": {"claims": {"iss": "https://id.example", "sub": "ana"}}}}
    assert caller_of(context) == "jwt:https://id.example#ana"


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({}, id="no-authorizer"),
        pytest.param({"authorizer": {}}, id="empty-authorizer"),
        pytest.param({"authorizer": {"iam": {"userArn": None, "userId": ""}}}, id="empty-iam"),
        pytest.param(
            {"authorizer": {"jwt": {"claims": {"iss": "https://id.example"}}}}, id="no-sub"
        ),
        pytest.param({"authorizer": {"jwt": {"claims": {"sub": ""}}}}, id="empty-sub"),
        pytest.param({"authorizer": {"jwt": {"claims": {"sub": 42}}}}, id="sub-not-a-string"),
    ],
)
def test_a_request_that_names_no_one_is_refused(context: dict[str, Any]) -> None:
    # Given a request context with no usable identity, and no local principal
    # When its owner is asked for / Then it is refused rather than given a shared owner
    with pytest.raises(UnidentifiedCallerError):
        caller_of(context)


def test_the_local_principal_owns_only_what_names_no_one() -> None:
    # Given a local principal (the local stack's)
    # Then a request without identity is its, and one with an identity keeps its own
    assert caller_of({}, "local") == "local"
    assert caller_of({"authorizer": {"jwt": {"claims": {"sub": "ana"}}}}, "local") == "jwt:#ana"
