"""Listing a caller's jobs (`GET /jobs`): newest first, filtered, a page at a time.

The cursor is opaque to the caller: the id where the page ended, bound to the caller and the
filters it was made for. A cursor is only ever applied to the caller's own partitions of the owner
index, so even a cursor built by hand can only move within the caller's own jobs; one made for
another caller or other filters is refused (400) rather than silently answering something else.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from jobpipe.domain.job import check_job_id, fingerprint
from jobpipe.domain.states import JobStatus
from jobpipe.errors import InvalidCursorError, InvalidJobIdError, InvalidRequestError
from jobpipe.ports import JobPage, JobQuery, JobStore
from jobpipe.topology import TOPOLOGY

CURSOR_VERSION = 1


@dataclass(frozen=True)
class ListRequest:
    owner: str
    # Comma-separated statuses, as the query string carries them ("failed,cancelled").
    status: str | None = None
    type: str | None = None
    limit: int = TOPOLOGY.api.default_list_limit
    cursor: str | None = None


@dataclass(frozen=True)
class Listing:
    page: JobPage
    next_cursor: str | None


class ListService:
    def __init__(self, store: JobStore, *, examine: int = TOPOLOGY.api.list_examine_limit) -> None:
        self._store = store
        self._examine = examine

    def list(self, request: ListRequest) -> Listing:
        """Raises InvalidRequestError (422) for an unknown status or a limit out of range, and
        InvalidCursorError (400) for a cursor not made for this caller and these filters."""
        statuses = parse_statuses(request.status)
        if not 1 <= request.limit <= TOPOLOGY.api.max_list_limit:
            raise InvalidRequestError(
                f"limit is 1 to {TOPOLOGY.api.max_list_limit}",
                [{"loc": "limit", "msg": f"between 1 and {TOPOLOGY.api.max_list_limit}"}],
            )
        scope = _scope(request.owner, statuses, request.type)
        before = decode_cursor(request.cursor, scope) if request.cursor else None
        page = self._store.list_jobs(
            JobQuery(
                owner=request.owner,
                statuses=statuses,
                job_type=request.type,
                before=before,
                limit=request.limit,
                examine=self._examine,
            )
        )
        cursor = encode_cursor(page.next_before, scope) if page.next_before else None
        return Listing(page, cursor)


def parse_statuses(raw: str | None) -> frozenset[JobStatus]:
    if not raw:
        return frozenset()
    known = [s.value for s in JobStatus]
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidRequestError(
            f"unknown status; known statuses: {', '.join(known)}",
            [{"loc": "status", "msg": "unknown status"}],
        )
    return frozenset(JobStatus(name) for name in names)


def _scope(owner: str, statuses: frozenset[JobStatus], job_type: str | None) -> str:
    """What a cursor is bound to: the caller and the listing's filters."""
    return fingerprint([owner, sorted(s.value for s in statuses), job_type])[:32]


def encode_cursor(before: str, scope: str) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, "b": before, "s": scope}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> str:
    """The job id a cursor continues below; refuses one made for another caller or filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        if not isinstance(value, dict) or value.get("v") != CURSOR_VERSION:
            raise ValueError("not a cursor")
        before = check_job_id(str(value["b"]))
        made_for = value["s"]
    except (ValueError, KeyError, TypeError, binascii.Error, InvalidJobIdError):
        raise InvalidCursorError("not a cursor this API gave: start again without one") from None
    if made_for != scope:
        raise InvalidCursorError(
            "this cursor was made for another caller or other filters: "
            "start again without one, or repeat the filters it was made with"
        )
    return before
