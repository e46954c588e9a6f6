"""Who is calling: the job's owner, from the API Gateway request context.

- IAM (SigV4): the caller's ARN. For an assumed role that is the role, not the session:
  `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` owns as `arn:aws:sts::ACCOUNT:assumed-role/ROLE`,
  so a service keeps its jobs when its next task or Lambda instance signs with a new session
  name; every session of one role (an ECS service, the SSO users of one permission set) shares
  its jobs. IAM users, federated users and the account root are their own ARN.
- JWT: `jwt:<issuer>#<sub>`.
- Anything else (no authorizer, an empty context, a JWT without `sub`) identifies no one and is
  refused, unless the process names a local principal (`JOBPIPE_LOCAL_PRINCIPAL`): the local
  stack does, so that a request without credentials is its one local caller.
"""

from __future__ import annotations

import re
from typing import Any

from jobpipe.errors import UnidentifiedCallerError

# What the local stack names its caller (`JOBPIPE_LOCAL_PRINCIPAL`, set by `jobpipe local`).
LOCAL_PRINCIPAL = "local"
# An STS assumed-role session ARN. Role names and session names hold no `/`, and the ARN never
# carries the role's path, so the role is everything before the last `/`.
_ASSUMED_ROLE_SESSION = re.compile(r"^(arn:[\w-]+:sts::\d{12}:assumed-role/[^/]+)/[^/]+$")


def owner_of_arn(arn: str) -> str:
    """The owner an IAM principal's ARN names: an assumed role's session is left out."""
    session = _ASSUMED_ROLE_SESSION.match(arn)
    return session.group(1) if session else arn


def caller_of(request_context: dict[str, Any], local_principal: str | None = None) -> str:
    """The owner of an HTTP API v2 request's jobs (see the module docstring); raises
    `UnidentifiedCallerError` when the request names no one and no local principal is set."""
    authorizer = request_context.get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    user_arn = iam.get("userArn")
    if isinstance(user_arn, str) and user_arn:
        return owner_of_arn(user_arn)
    user_id = iam.get("userId")
    if isinstance(user_id, str) and user_id:
        # An assumed role's id is `ROLE_ID:SESSION`: the role is the owner, as above.
        return f"iam:{user_id.split(':', 1)[0] if user_id.startswith('AROA') else user_id}"
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    subject = claims.get("sub")
    if isinstance(subject, str) and subject:
        return f"jwt:{claims.get('iss', '')}#{subject}"
    if local_principal:
        return local_principal
    raise UnidentifiedCallerError(
        "the request carries no caller identity: sign it with SigV4, or send a JWT with a sub"
    )
