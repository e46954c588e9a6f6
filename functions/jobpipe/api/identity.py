"""Who is calling: the job's owner, from the API Gateway request context."""

from __future__ import annotations

from typing import Any

# Used when the request carries no authorizer context: `jobpipe local`, and tests.
LOCAL_PRINCIPAL = "local"


def caller_of(request_context: dict[str, Any]) -> str:
    """The IAM principal (IAM auth) or `jwt:<issuer>#<sub>` (JWT auth) of an HTTP API v2
    request; a fixed local principal when there is neither."""
    authorizer = request_context.get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    if iam.get("userArn"):
        return str(iam["userArn"])
    if iam.get("userId"):
        return f"iam:{iam['userId']}"
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    if claims.get("sub"):
        return f"jwt:{claims.get('iss', '')}#{claims['sub']}"
    return LOCAL_PRINCIPAL
