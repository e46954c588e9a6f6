"""The job store on DynamoDB: one item per job, every transition one conditional write.

The job item also carries the worker's idempotency record (see `jobpipe.worker.idempotency`), so
a successful job costs two writes in the worker: its start and its outcome.

Nothing is stored twice: a job's `completed_at` is the `updated_at` of its terminal transition,
and a retrying job's `next_attempt_at` is its `pending_since` (the time it is due to be started,
which also places it in the reaper's pending index). Every field a write leaves out is one less
to send, parse and check on the hot path.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from jobpipe.domain import changes
from jobpipe.domain.job import ErrorInfo, Job, stored_json
from jobpipe.domain.retry import EARLY_START_TOLERANCE_MS
from jobpipe.domain.states import (
    ABANDON,
    FAIL,
    REPLAY,
    RETRY,
    START,
    SUCCEED,
    JobStatus,
    Transition,
)
from jobpipe.errors import IllegalTransitionError, StoreError
from jobpipe.ports import JobStore, KeyClaim, StuckJob
from jobpipe.topology import TOPOLOGY, ItemBudget

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = TOPOLOGY.table.partition_key
TTL = TOPOLOGY.table.ttl_attribute
LEASE = TOPOLOGY.table.lease_index_sort_key
PENDING_SINCE = TOPOLOGY.table.pending_index_sort_key
DLQ_SENT = "dlq_sent"
REAP_KEY = TOPOLOGY.table.stuck_index_partition_key
# Pages of an index query: small, since the reaper claims each job it reads with a write.
QUERY_PAGE = 50
KEY_RETENTION_SECONDS = 24 * 3600

Item = dict[str, Any]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _status_values(transition: Transition) -> dict[str, dict[str, str]]:
    return {f":from_{s.value}": _s(s.value) for s in sorted(transition.sources)}


def _status_condition(transition: Transition) -> str:
    # A missing item has no status, so this also refuses to touch (or create) a missing job.
    # Kept as short as the rule allows: every condition is parsed on every request.
    names = [f":from_{s.value}" for s in sorted(transition.sources)]
    if len(names) == 1:
        return f"#status = {names[0]}"
    return f"#status IN ({', '.join(names)})"


# FAIL and ABANDON end in the same fields (see domain.changes.failed).
_FAILED_UPDATE = (
    "SET #status = :to, error_type = :etype, error_message = :emsg, "
    f"dead_lettered = :dl, updated_at = :now, {TTL} = :exp "
)


def _failed_values(
    transition: Transition, error: ErrorInfo, dead_lettered: bool, now_ms: int, expires_at: int
) -> dict[str, Any]:
    return {
        **_status_values(transition),
        ":to": _s(transition.target),
        ":etype": _s(error.type),
        ":emsg": _s(error.message),
        ":dl": {"BOOL": dead_lettered},
        ":now": _n(now_ms),
        ":exp": _n(expires_at),
    }


def job_to_item(job: Job) -> Item:
    """The job's item as DynamoDB stores it (every field the job has)."""
    item: Item = {
        PK: _s(job.job_id),
        "type": _s(job.type),
        "params": _s(stored_json(job.params)),
        "owner": _s(job.owner),
        "status": _s(job.status.value),
        "created_at": _n(job.created_at),
        "updated_at": _n(job.updated_at),
        TTL: _n(job.expires_at),
        "max_attempts": _n(job.max_attempts),
        "attempts": _n(job.attempts),
        "payload_hash": _s(job.payload_hash),
        "dead_lettered": {"BOOL": job.dead_lettered},
        "replays": _n(job.replays),
        REAP_KEY: _s(reap_key(job.type, job.job_id)),
    }
    if job.dead_letter_sent:
        item[DLQ_SENT] = {"BOOL": True}
    if job.status is JobStatus.PENDING:
        # Puts the job in the reaper's pending index until a START takes it out.
        item[PENDING_SINCE] = _n(job.updated_at)
    elif job.status is JobStatus.RETRYING and job.next_attempt_at is not None:
        item[PENDING_SINCE] = _n(job.next_attempt_at)
    optional: dict[str, dict[str, Any] | None] = {
        "started_at": _n(job.started_at) if job.started_at is not None else None,
        LEASE: _n(job.lease_expires_at) if job.lease_expires_at is not None else None,
        "result": _s(stored_json(job.result)) if job.status is JobStatus.SUCCEEDED else None,
        "error_type": _s(job.error.type) if job.error else None,
        "error_message": _s(job.error.message) if job.error else None,
        "prior_attempts": _n(job.prior_attempts) if job.prior_attempts else None,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


def item_size(item: Item) -> int:
    """The size DynamoDB counts for `item`: each attribute's name and value, text in UTF-8 bytes,
    a number one byte per two significant digits plus one (counted here as an upper bound)."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(str(raw).encode("utf-8"))
    if kind == "N":
        digits = sum(c.isdigit() for c in str(raw))
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _value_size(v) for k, v in raw.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    # String, number and binary sets.
    return sum(_value_size({kind[0]: member}) for member in raw)


def result_budget(running: Job, budget: ItemBudget = TOPOLOGY.item) -> int:
    """How many bytes (stored UTF-8 JSON) the job's result may take: the cap, or what the item
    has left under DynamoDB's limit after everything else it holds on success and the reserve
    for attempt history and progress, whichever is smaller."""
    done = changes.succeeded(
        running, result=None, now_ms=running.updated_at, expires_at=running.expires_at
    )
    without_result = item_size(job_to_item(done)) - len("null")
    room = budget.item_limit_bytes - budget.reserve_bytes - without_result
    return max(0, min(budget.result_cap_bytes, room))


def reap_key(job_type: str, job_id: str, shards: int = TOPOLOGY.table.stuck_index_shards) -> str:
    """The job's partition in the reaper's indexes: its type and a shard taken from its id."""
    return f"{job_type}#{zlib.crc32(job_id.encode()) % shards}"


def item_to_job(item: Item) -> Job:
    def n(name: str) -> int | None:
        value = item.get(name)
        return int(value["N"]) if value else None

    def s(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    error_type = s("error_type")
    result = s("result")
    status = JobStatus(item["status"]["S"])
    updated_at = int(item["updated_at"]["N"])
    return Job(
        job_id=item[PK]["S"],
        type=item["type"]["S"],
        params=json.loads(item["params"]["S"]),
        owner=item["owner"]["S"],
        status=status,
        created_at=int(item["created_at"]["N"]),
        updated_at=updated_at,
        expires_at=int(item[TTL]["N"]),
        max_attempts=int(item["max_attempts"]["N"]),
        attempts=int(item["attempts"]["N"]),
        payload_hash=item.get("payload_hash", {}).get("S", ""),
        started_at=n("started_at"),
        completed_at=updated_at if status.is_terminal else None,
        next_attempt_at=n(PENDING_SINCE) if status is JobStatus.RETRYING else None,
        lease_expires_at=n("lease_expires_at"),
        result=json.loads(result) if result is not None else None,
        error=ErrorInfo(error_type, s("error_message") or "") if error_type else None,
        dead_lettered=item.get("dead_lettered", {}).get("BOOL", False),
        dead_letter_sent=item.get(DLQ_SENT, {}).get("BOOL", False),
        replays=n("replays") or 0,
        prior_attempts=n("prior_attempts") or 0,
    )


class DynamoDBJobStore(JobStore):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        retention_days: int = TOPOLOGY.retention_days,
    ) -> None:
        self._table = table_name
        self._client_override = client
        self._retention_s = retention_days * 86400

    def _expires(self, now_ms: int) -> int:
        return now_ms // 1000 + self._retention_s

    @property
    def _client(self) -> DynamoDBClient:
        if self._client_override is not None:
            return self._client_override
        from jobpipe.adapters import clients

        return clients.dynamodb()

    # --- plain reads and writes --------------------------------------------------------------

    def create(self, job: Job) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=job_to_item(job),
                ConditionExpression=f"attribute_not_exists({PK})",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise IllegalTransitionError(job.job_id, "create", "existing") from None
        except Exception as exc:
            raise _store_error("PutItem", exc) from exc

    def get(self, job_id: str) -> Job | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={PK: _s(job_id)}, ConsistentRead=True
            )
        except Exception as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        if not item or "status" not in item:
            return None
        job = item_to_job(item)
        # TTL deletion is lazy: an expired job may still be read; it is gone to callers.
        return None if job.expires_at < time.time() else job

    def delete_pending(self, job_id: str) -> bool:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={PK: _s(job_id)},
                ConditionExpression="#status = :pending AND attempts = :zero",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": _s(JobStatus.PENDING), ":zero": _n(0)},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        except Exception as exc:
            raise _store_error("DeleteItem", exc) from exc
        return True

    def claim_key(
        self, key_id: str, job_id: str, request_hash: str, now_ms: int
    ) -> KeyClaim | None:
        now_s = now_ms // 1000
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    PK: _s(key_id),
                    "job_id": _s(job_id),
                    "request_hash": _s(request_hash),
                    "created_at": _n(now_ms),
                    TTL: _n(now_s + KEY_RETENTION_SECONDS),
                },
                # An expired key (TTL deletion is lazy) may be claimed again.
                ConditionExpression=f"attribute_not_exists({PK}) OR {TTL} < :now",
                ExpressionAttributeValues={":now": _n(now_s)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old = cast(Item, exc.response.get("Item") or {})
            return KeyClaim(job_id=old["job_id"]["S"], request_hash=old["request_hash"]["S"])
        except Exception as exc:
            raise _store_error("PutItem", exc) from exc
        return None

    def result_budget(self, running: Job) -> int:
        return result_budget(running)

    # --- transitions ---------------------------------------------------------------------------

    def start(self, job_id: str, *, payload_hash: str, lease_expires_at: int, now_ms: int) -> Job:
        condition = (
            "payload_hash = :hash AND attempts < max_attempts AND "
            "(#status = :from_pending OR "
            # A retry only once it is due: a message SQS shows early is handed back.
            f"(#status = :from_retrying AND {PENDING_SINCE} <= :due) OR "
            "(#status = :running AND lease_expires_at < :now))"
        )
        return self._update(
            job_id,
            START,
            update=(
                "SET #status = :running, attempts = attempts + :one, started_at = :now, "
                f"updated_at = :now, lease_expires_at = :lease, {TTL} = :exp "
                # Out of the reaper's pending index, in the same write: no extra call.
                f"REMOVE {PENDING_SINCE}"
            ),
            condition=condition,
            values={
                **_status_values(START),
                ":running": _s(JobStatus.RUNNING),
                ":hash": _s(payload_hash),
                ":one": _n(1),
                ":now": _n(now_ms),
                ":due": _n(now_ms + EARLY_START_TOLERANCE_MS),
                ":lease": _n(lease_expires_at),
                ":exp": _n(self._expires(now_ms)),
            },
        )

    def succeed(self, running: Job, *, result: Any, now_ms: int) -> Job:
        # An earlier attempt's error goes now, if there was one.
        remove = (
            "lease_expires_at, error_type, error_message" if running.error else "lease_expires_at"
        )
        self._write(
            running.job_id,
            SUCCEED,
            update=(
                f"SET #status = :to, #result = :result, updated_at = :now, {TTL} = :exp "
                f"REMOVE {remove}"
            ),
            condition=f"{_status_condition(SUCCEED)} AND attempts = :attempt",
            values={
                **_status_values(SUCCEED),
                ":to": _s(SUCCEED.target),
                ":result": _s(stored_json(result)),
                ":now": _n(now_ms),
                ":exp": _n(self._expires(now_ms)),
                ":attempt": _n(running.attempts),
            },
            names={"#result": "result"},
            read_back=False,
        )
        return changes.succeeded(
            running, result=result, now_ms=now_ms, expires_at=self._expires(now_ms)
        )

    def retry(self, running: Job, *, error: ErrorInfo, next_attempt_at: int, now_ms: int) -> Job:
        self._write(
            running.job_id,
            RETRY,
            update=(
                "SET #status = :to, error_type = :etype, error_message = :emsg, "
                # A retrying job waits like a pending one, from when its retry is due (its
                # next_attempt_at): the reaper finds it in the same index if its message never
                # comes back.
                f"updated_at = :now, {PENDING_SINCE} = :next, {TTL} = :exp "
                "REMOVE lease_expires_at"
            ),
            condition=f"{_status_condition(RETRY)} AND attempts = :attempt",
            values={
                **_status_values(RETRY),
                ":to": _s(RETRY.target),
                ":etype": _s(error.type),
                ":emsg": _s(error.message),
                ":next": _n(next_attempt_at),
                ":now": _n(now_ms),
                ":exp": _n(self._expires(now_ms)),
                ":attempt": _n(running.attempts),
            },
            read_back=False,
        )
        return changes.retrying(
            running,
            error=error,
            next_attempt_at=next_attempt_at,
            now_ms=now_ms,
            expires_at=self._expires(now_ms),
        )

    def fail(self, running: Job, *, error: ErrorInfo, dead_lettered: bool, now_ms: int) -> Job:
        self._write(
            running.job_id,
            FAIL,
            update=_FAILED_UPDATE + "REMOVE lease_expires_at",
            condition=f"{_status_condition(FAIL)} AND attempts = :attempt",
            values={
                **_failed_values(FAIL, error, dead_lettered, now_ms, self._expires(now_ms)),
                ":attempt": _n(running.attempts),
            },
            read_back=False,
        )
        return changes.failed(
            running,
            error=error,
            dead_lettered=dead_lettered,
            now_ms=now_ms,
            expires_at=self._expires(now_ms),
        )

    def abandon(
        self,
        job_id: str,
        *,
        error: ErrorInfo,
        now_ms: int,
        lease_expires_at: int | None = None,
        dead_letter_sent: bool = False,
    ) -> Job:
        condition = _status_condition(ABANDON)
        values = _failed_values(ABANDON, error, True, now_ms, self._expires(now_ms))
        update = _FAILED_UPDATE
        if dead_letter_sent:
            update += f", {DLQ_SENT} = :true "
            values[":true"] = {"BOOL": True}
        if lease_expires_at is not None:
            condition += " AND lease_expires_at = :lease"
            values[":lease"] = _n(lease_expires_at)
        return self._update(
            job_id,
            ABANDON,
            update=update + f"REMOVE lease_expires_at, {PENDING_SINCE}",
            condition=condition,
            values=values,
        )

    def mark_dead_letter_sent(self, job_id: str, *, replays: int) -> None:
        # Refused when the job was replayed (or is gone) since: nothing to mark.
        with contextlib.suppress(IllegalTransitionError):
            self._write(
                job_id,
                "mark_dead_letter_sent",
                update=f"SET {DLQ_SENT} = :true",
                condition="#status = :failed AND dead_lettered = :true AND replays = :replays",
                values={
                    ":failed": _s(JobStatus.FAILED),
                    ":true": {"BOOL": True},
                    ":replays": _n(replays),
                },
            )

    def replay(self, job_id: str, *, now_ms: int) -> Job:
        return self._update(
            job_id,
            REPLAY,
            update=(
                "SET #status = :to, prior_attempts = if_not_exists(prior_attempts, :zero) + "
                "attempts, attempts = :zero, replays = if_not_exists(replays, :zero) + :one, "
                f"dead_lettered = :false, updated_at = :now, {PENDING_SINCE} = :now, "
                f"{TTL} = :exp "
                f"REMOVE error_type, error_message, started_at, lease_expires_at, {DLQ_SENT}"
            ),
            condition=_status_condition(REPLAY),
            values={
                **_status_values(REPLAY),
                ":to": _s(REPLAY.target),
                ":zero": _n(0),
                ":one": _n(1),
                ":false": {"BOOL": False},
                ":now": _n(now_ms),
                ":exp": _n(self._expires(now_ms)),
            },
        )

    # --- stuck jobs -----------------------------------------------------------------------------

    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        for item in self._query(TOPOLOGY.table.lease_index, LEASE, job_type, before_ms, limit):
            yield StuckJob(
                job_id=item[PK]["S"],
                status=JobStatus.RUNNING,
                since=int(item[LEASE]["N"]),
                attempts=int(item["attempts"]["N"]),
                max_attempts=int(item["max_attempts"]["N"]),
            )

    def pending_before(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        for item in self._query(
            TOPOLOGY.table.pending_index, PENDING_SINCE, job_type, before_ms, limit
        ):
            yield StuckJob(
                job_id=item[PK]["S"], status=JobStatus.PENDING, since=int(item[PENDING_SINCE]["N"])
            )

    def claim_stuck(self, stuck: StuckJob, *, now_ms: int) -> Job:
        if stuck.status is JobStatus.RUNNING:
            marker = LEASE
            condition = f"#status = :status AND {marker} = :seen AND attempts < max_attempts"
            statuses = {":status": _s(JobStatus.RUNNING.value)}
        else:
            marker = PENDING_SINCE
            condition = f"#status IN (:status, :retrying) AND {marker} = :seen"
            statuses = {
                ":status": _s(JobStatus.PENDING.value),
                ":retrying": _s(JobStatus.RETRYING.value),
            }
        item = self._write(
            stuck.job_id,
            "claim",
            update=f"SET {marker} = :now",
            condition=condition,
            values={
                **statuses,
                ":seen": _n(stuck.since),
                ":now": _n(now_ms),
            },
            read_back=True,
        )
        assert item is not None
        return item_to_job(item)

    def _query(
        self, index: str, sort_key: str, job_type: str, before_ms: int, limit: int
    ) -> Iterator[Item]:
        """Items of one job type in a sparse index with a sort key below `before_ms`, oldest
        first across the type's shards, page by page, at most `limit`."""
        shards = [
            self._query_shard(index, sort_key, f"{job_type}#{shard}", before_ms, limit)
            for shard in range(TOPOLOGY.table.stuck_index_shards)
        ]
        merged = heapq.merge(*shards, key=lambda item: int(item[sort_key]["N"]))
        yield from itertools.islice(merged, limit)

    def _query_shard(
        self, index: str, sort_key: str, key: str, before_ms: int, limit: int
    ) -> Iterator[Item]:
        start: Item | None = None
        left = limit
        while left > 0:
            kwargs: dict[str, Any] = {}
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            try:
                response = self._client.query(
                    TableName=self._table,
                    IndexName=index,
                    KeyConditionExpression="#key = :key AND #since < :before",
                    ExpressionAttributeNames={
                        "#key": TOPOLOGY.table.stuck_index_partition_key,
                        "#since": sort_key,
                    },
                    ExpressionAttributeValues={":key": _s(key), ":before": _n(before_ms)},
                    Limit=min(left, QUERY_PAGE),
                    **kwargs,
                )
            except Exception as exc:
                raise _store_error("Query", exc) from exc
            items = response.get("Items", [])
            yield from items[:left]
            left -= len(items)
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def _update(
        self,
        job_id: str,
        transition: Transition,
        *,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> Job:
        """One conditional UpdateItem that answers with the job after it."""
        item = self._write(job_id, transition, update, condition, values, names, read_back=True)
        assert item is not None
        return item_to_job(item)

    def _write(
        self,
        job_id: str,
        transition: Transition | str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        *,
        read_back: bool = False,
    ) -> Item | None:
        """One conditional UpdateItem (a transition, or the reaper's "claim", which changes no
        status); the item after it only when `read_back`."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={PK: _s(job_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status", **(names or {})},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW" if read_back else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old = cast(Item | None, exc.response.get("Item"))
            current = item_to_job(old) if old and "status" in old else None
            name = transition if isinstance(transition, str) else transition.name
            raise IllegalTransitionError(
                job_id, name, current.status.value if current else None, current
            ) from None
        except Exception as exc:
            raise _store_error("UpdateItem", exc) from exc
        return cast(Item, response["Attributes"]) if read_back else None


def _store_error(operation: str, exc: Exception) -> StoreError:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return StoreError(f"DynamoDB {operation} failed: {code}")
