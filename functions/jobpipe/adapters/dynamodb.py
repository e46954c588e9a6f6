"""The job store on DynamoDB: one item per job, every transition one conditional UpdateItem.

The item is the job's record (`jobpipe.domain.record`) with its values typed; each transition of
`jobpipe.domain.states` is compiled from its declaration into the update and condition
expressions. The job item also carries the worker's idempotency record (see
`jobpipe.worker.idempotency`), so a successful job costs two writes in the worker: its start and
its outcome.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from jobpipe.adapters.clients import error_code
from jobpipe.adapters.listing import page_from_entries
from jobpipe.domain.expressions import (
    Add,
    AddToSet,
    All,
    Append,
    Arg,
    Change,
    Compare,
    Condition,
    Exists,
    Field,
    IsIn,
    Missing,
    Record,
    Remove,
    Set,
    SetIfGiven,
    Sum,
    Value,
    apply_changes,
)
from jobpipe.domain.job import Job
from jobpipe.domain.record import (
    KEY,
    LEASE,
    LISTED_FIELDS,
    OUTBOX_DUE,
    OUTBOX_KEY,
    OWNER_KEY,
    PENDING_SINCE,
    TIME_KEY,
    TTL,
    from_listed_record,
    from_record,
    owner_key,
    time_key,
    to_record,
    workflow_from_record,
    workflow_key,
    workflow_to_record,
)
from jobpipe.domain.states import SUCCEED, JobStatus, Transition
from jobpipe.errors import IllegalTransitionError, StoreError
from jobpipe.ports import FollowUp, JobPage, JobQuery, JobStore, KeyClaim, StuckJob
from jobpipe.topology import TOPOLOGY, ItemBudget

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from jobpipe.domain.workflow import Workflow

# Pages of an index query: small, since the reaper claims each job it reads with a write.
QUERY_PAGE = 50
KEY_RETENTION_SECONDS = 24 * 3600
# DynamoDB's limit of keys per BatchGetItem.
BATCH_GET_KEYS = 100
# Conditional puts in flight at once when many jobs are written (a workflow's members).
PARALLEL_PUTS = 16
# BatchGetItem may leave keys unprocessed (throttling): asked again this many times.
UNPROCESSED_TRIES = 8
# DynamoDB's batch sizes: BatchWriteItem takes 25 puts, BatchGetItem 100 keys.
WRITE_BATCH = 25
READ_BATCH = 100
# A batch request's unprocessed part is sent again this many times, after a doubling pause.
BATCH_RETRIES = 5
BATCH_BACKOFF_SECONDS = 0.05
# A listing's first query of each shard asks for a little more than its share of the page;
# later ones (a filter skipped many entries) for this many.
LIST_QUERY_PAGE = 100

Item = dict[str, Any]


# --- typed values ------------------------------------------------------------------------------


def to_attribute(value: Any) -> dict[str, Any]:
    """A plain value as a DynamoDB attribute value."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, set | frozenset):
        return {"NS": sorted(str(v) for v in value)}
    if isinstance(value, int | float):
        return {"N": str(value) if isinstance(value, int) else repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} on a job item")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    ((kind, raw),) = attribute.items()
    if kind == "N":
        number = float(raw)
        return int(raw) if raw.lstrip("-").isdigit() else number
    if kind == "L":
        return [from_attribute(v) for v in raw]
    if kind == "M":
        return {k: from_attribute(v) for k, v in raw.items()}
    if kind == "NULL":
        return None
    if kind == "NS":
        return {int(v) if v.lstrip("-").isdigit() else float(v) for v in raw}
    return raw  # S, BOOL, B


def to_item(record: Mapping[str, Any]) -> Item:
    return {name: to_attribute(value) for name, value in record.items()}


def to_record_of_item(item: Mapping[str, Any]) -> Record:
    return {name: from_attribute(value) for name, value in item.items()}


# --- sizes -------------------------------------------------------------------------------------


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
    args = {"result": "", "now": running.updated_at, "expires_at": running.expires_at}
    done = apply_changes(SUCCEED.writes, to_record(running), {**args, "attempt": 0})
    room = budget.item_limit_bytes - budget.reserve_bytes - item_size(to_item(done))
    return max(0, min(budget.result_cap_bytes, room))


# --- transitions, compiled -----------------------------------------------------------------------


class _Expression:
    """Placeholders for one request's names and values."""

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.args = args
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, field: str) -> str:
        placeholder = f"#{field}"
        self.names[placeholder] = field
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def operand(self, value: Value) -> str:
        if isinstance(value, Arg):
            return self.value(self.args[value.name])
        if isinstance(value, Field):
            if value.default is None:
                return self.name(value.name)
            return f"if_not_exists({self.name(value.name)}, {self.value(value.default)})"
        if isinstance(value, Sum):
            return f"{self.operand(value.left)} + {self.operand(value.right)}"
        return self.value(value)

    def condition(self, condition: Condition) -> str:
        if isinstance(condition, Compare):
            return f"{self.name(condition.field)} {condition.op} {self.operand(condition.value)}"
        if isinstance(condition, IsIn):
            options = [self.value(v) for v in condition.values]
            if len(options) == 1:
                return f"{self.name(condition.field)} = {options[0]}"
            return f"{self.name(condition.field)} IN ({', '.join(options)})"
        if isinstance(condition, Exists):
            return f"attribute_exists({self.name(condition.field)})"
        if isinstance(condition, Missing):
            return f"attribute_not_exists({self.name(condition.field)})"
        joiner = " AND " if isinstance(condition, All) else " OR "
        return "(" + joiner.join(self.condition(part) for part in condition.parts) + ")"

    def update(self, changes: tuple[Change, ...]) -> str:
        sets: list[str] = []
        adds: list[str] = []
        removes: list[str] = []
        for change in changes:
            if isinstance(change, Set):
                sets.append(f"{self.name(change.field)} = {self.operand(change.value)}")
            elif isinstance(change, SetIfGiven):
                if self.args.get(change.value.name) is not None:
                    sets.append(f"{self.name(change.field)} = {self.operand(change.value)}")
            elif isinstance(change, Append):
                field = self.name(change.field)
                empty = self.value([])
                new = self.operand(change.value)
                sets.append(f"{field} = list_append(if_not_exists({field}, {empty}), {new})")
            elif isinstance(change, Add):
                adds.append(f"{self.name(change.field)} {self.value(change.amount)}")
            elif isinstance(change, AddToSet):
                member = self.args[change.value.name]
                adds.append(f"{self.name(change.field)} {self.value({member})}")
            elif isinstance(change, Remove):
                removes.append(self.name(change.field))
        parts = [
            ("SET", sets),
            ("ADD", adds),
            ("REMOVE", removes),
        ]
        return " ".join(f"{verb} {', '.join(items)}" for verb, items in parts if items)


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
                Item=to_item(to_record(job)),
                ConditionExpression=f"attribute_not_exists({KEY})",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise IllegalTransitionError(job.job_id, "create", "existing") from None
        except Exception as exc:
            raise _store_error("PutItem", exc) from exc

    def get(self, job_id: str) -> Job | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={KEY: {"S": job_id}}, ConsistentRead=True
            )
        except Exception as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        if not item or "status" not in item:
            return None
        job = from_record(to_record_of_item(item))
        # TTL deletion is lazy: an expired job may still be read; it is gone to callers.
        return None if job.expires_at < time.time() else job

    def create_missing(self, jobs: Sequence[Job]) -> None:
        """Each job written only if it does not exist, PARALLEL_PUTS at a time. Conditional
        PutItems, not transactions: nothing here needs all-or-nothing (a retry writes what is
        missing), and a transaction bills two write units an item."""

        def put(job: Job) -> None:
            with contextlib.suppress(IllegalTransitionError):  # written by an earlier try
                self.create(job)

        if len(jobs) <= 1:
            for job in jobs:
                put(job)
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_PUTS, len(jobs))) as pool:
            # Every put runs; the first failure is raised once all have ended.
            for done in [pool.submit(put, job) for job in jobs]:
                done.result()

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        for item in self._batch_get(list(dict.fromkeys(job_ids))):
            if "status" in item and "workflow_owner" not in item:
                job = from_record(to_record_of_item(item))
                if job.expires_at >= time.time():
                    found[job.job_id] = job
        return found

    def _batch_get(self, keys: list[str]) -> Iterator[Item]:
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: Any = {
                self._table: {
                    "Keys": [{KEY: {"S": key}} for key in keys[start : start + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(UNPROCESSED_TRIES):
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise _store_error("BatchGetItem", exc) from exc
                yield from response.get("Responses", {}).get(self._table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if request:
                raise StoreError("DynamoDB BatchGetItem left keys unprocessed")

    def create_many(self, jobs: list[Job]) -> set[str]:
        """BatchWriteItem, 25 puts a request, with its unprocessed items sent again. These puts
        carry no condition (BatchWriteItem takes none): only jobs with fresh ids come here."""
        unsure: set[str] = set()
        for start in range(0, len(jobs), WRITE_BATCH):
            chunk = jobs[start : start + WRITE_BATCH]
            requests: list[Any] = [
                {"PutRequest": {"Item": to_item(to_record(job))}} for job in chunk
            ]
            try:
                left = self._batch_write(requests)
            except StoreError:
                unsure.update(job.job_id for job in chunk)
                continue
            unsure.update(request["PutRequest"]["Item"][KEY]["S"] for request in left)
        return unsure

    def _batch_write(self, requests: list[Any]) -> list[Any]:
        """The requests still unprocessed after the retries."""
        pause = BATCH_BACKOFF_SECONDS
        for attempt in range(BATCH_RETRIES + 1):
            try:
                response = self._client.batch_write_item(RequestItems={self._table: requests})
            except Exception as exc:
                raise _store_error("BatchWriteItem", exc) from exc
            requests = list(response.get("UnprocessedItems", {}).get(self._table, []))
            if not requests or attempt == BATCH_RETRIES:
                break
            time.sleep(pause)
            pause *= 2
        return requests

    def list_jobs(self, query: JobQuery) -> JobPage:
        """The owner index (or, for every owner, the time index): each of its shards queried
        newest first and merged by job id, the type filtered on the index entries, the jobs read
        with BatchGetItem (all but params and result) and their status filtered."""
        table = TOPOLOGY.table
        shards = range(table.list_index_shards)
        if query.owner is None:
            index, key_name, keys = table.time_index, TIME_KEY, [time_key(s) for s in shards]
        else:
            owner = query.owner
            index, key_name, keys = (
                table.owner_index,
                OWNER_KEY,
                [owner_key(owner, s) for s in shards],
            )
        first_page = max(10, -(-query.limit // len(keys)) + 5)
        streams = [self._list_shard(index, key_name, key, query.before, first_page) for key in keys]
        merged = heapq.merge(*streams, key=lambda entry: entry[0], reverse=True)
        return page_from_entries(merged, query, self._read_listed)

    def _list_shard(
        self, index: str, key_name: str, key: str, before: str | None, first_page: int
    ) -> Iterator[tuple[str, str]]:
        """(job id, type) of one shard's entries, newest first, queried page by page as read."""
        condition = "#key = :key"
        names = {"#key": key_name}
        values: dict[str, Any] = {":key": {"S": key}}
        if before is not None:
            condition += " AND #id < :before"
            names["#id"] = KEY
            values[":before"] = {"S": before}
        start: Item | None = None
        limit = first_page
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start is not None else {}
            try:
                response = self._client.query(
                    TableName=self._table,
                    IndexName=index,
                    KeyConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ScanIndexForward=False,
                    Limit=limit,
                    **kwargs,
                )
            except Exception as exc:
                raise _store_error("Query", exc) from exc
            for item in response.get("Items", []):
                yield item[KEY]["S"], item.get("type", {}).get("S", "")
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            limit = LIST_QUERY_PAGE

    def _read_listed(self, job_ids: list[str]) -> list[Job]:
        """The jobs (all but params and result), in the order asked; missing and expired ones
        left out. Eventually consistent reads: a listing may show a status a moment old."""
        names = {f"#f{i}": name for i, name in enumerate(LISTED_FIELDS)}
        found: dict[str, Job] = {}
        now_s = time.time()
        for start in range(0, len(job_ids), READ_BATCH):
            keys: list[Any] = [
                {KEY: {"S": job_id}} for job_id in job_ids[start : start + READ_BATCH]
            ]
            pause = BATCH_BACKOFF_SECONDS
            for attempt in range(BATCH_RETRIES + 1):
                try:
                    response = self._client.batch_get_item(
                        RequestItems={
                            self._table: {
                                "Keys": keys,
                                "ProjectionExpression": ", ".join(names),
                                "ExpressionAttributeNames": names,
                            }
                        }
                    )
                except Exception as exc:
                    raise _store_error("BatchGetItem", exc) from exc
                for item in response.get("Responses", {}).get(self._table, []):
                    if "status" not in item:
                        continue
                    job = from_listed_record(to_record_of_item(item))
                    if job.expires_at >= now_s:
                        found[job.job_id] = job
                unprocessed: Any = response.get("UnprocessedKeys", {})
                keys = list(unprocessed.get(self._table, {}).get("Keys", []))
                if not keys:
                    break
                if attempt == BATCH_RETRIES:
                    raise StoreError("DynamoDB BatchGetItem left keys unprocessed")
                time.sleep(pause)
                pause *= 2
        return [found[job_id] for job_id in job_ids if job_id in found]

    def delete_pending(self, job_id: str) -> bool:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={KEY: {"S": job_id}},
                ConditionExpression="#status IN (:pending, :scheduled) AND attempts = :zero",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":scheduled": {"S": JobStatus.SCHEDULED.value},
                    ":zero": {"N": "0"},
                },
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
                Item=to_item(
                    {
                        KEY: key_id,
                        "job_id": job_id,
                        "request_hash": request_hash,
                        "created_at": now_ms,
                        TTL: now_s + KEY_RETENTION_SECONDS,
                    }
                ),
                # An expired key (TTL deletion is lazy) may be claimed again.
                ConditionExpression=f"attribute_not_exists({KEY}) OR {TTL} < :now",
                ExpressionAttributeValues={":now": {"N": str(now_s)}},
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

    # --- workflows -----------------------------------------------------------------------------

    def create_workflow(self, workflow: Workflow) -> Workflow | None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(workflow_to_record(workflow)),
                ConditionExpression=f"attribute_not_exists({KEY})",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old = cast(Item, exc.response.get("Item") or {})
            return workflow_from_record(to_record_of_item(old))
        except Exception as exc:
            raise _store_error("PutItem", exc) from exc
        return None

    def get_workflow(self, workflow_id: str) -> Workflow | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={KEY: {"S": workflow_key(workflow_id)}},
                ConsistentRead=True,
            )
        except Exception as exc:
            raise _store_error("GetItem", exc) from exc
        item = response.get("Item")
        if not item:
            return None
        workflow = workflow_from_record(to_record_of_item(item))
        return None if workflow.expires_at < time.time() else workflow

    def apply_workflow(self, transition: Transition, workflow_id: str, /, **args: Any) -> Workflow:
        args = self._with_retention(transition, args)
        record = self._update(
            workflow_key(workflow_id), workflow_id, transition, args, workflow_from_record
        )
        return workflow_from_record(record)

    def followups_due(self, *, before_ms: int, limit: int) -> Iterator[FollowUp]:
        table = TOPOLOGY.table
        shards = [
            self._query_shard(
                table.outbox_index,
                OUTBOX_KEY,
                OUTBOX_DUE,
                f"outbox#{shard}",
                before_ms,
                limit,
            )
            for shard in range(table.outbox_shards)
        ]
        merged = heapq.merge(*shards, key=lambda item: int(item[OUTBOX_DUE]["N"]))
        for item in itertools.islice(merged, limit):
            yield FollowUp(key=item[KEY]["S"], due=int(item[OUTBOX_DUE]["N"]))

    # --- transitions ---------------------------------------------------------------------------

    def apply(self, transition: Transition, job: str | Job, /, **args: Any) -> Job:
        known = job if isinstance(job, Job) else None
        job_id = known.job_id if known is not None else cast(str, job)
        args = self._with_retention(transition, args)
        if known is not None:
            self._update(job_id, job_id, transition, args, from_record, returns=False)
            # The job after the write, worked out from the job the caller holds (fenced by the
            # condition) instead of read back.
            return from_record(apply_changes(transition.writes, to_record(known), args))
        return from_record(self._update(job_id, job_id, transition, args, from_record))

    def _update(
        self,
        key: str,
        name: str,
        transition: Transition,
        args: dict[str, Any],
        parse: Callable[[Record], object],
        *,
        returns: bool = True,
    ) -> Record:
        """One conditional UpdateItem of the item `key`: its record after the write (empty when
        not `returns`). A refusal raises IllegalTransitionError with the item as it stood,
        parsed by `parse`."""
        expression = _Expression(args)
        condition = expression.condition(transition.condition)
        update = expression.update(transition.writes)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=expression.names,
                ExpressionAttributeValues=expression.values,
                ReturnValues="ALL_NEW" if returns else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old = cast(Item | None, exc.response.get("Item"))
            record = to_record_of_item(old) if old and "status" in old else None
            raise IllegalTransitionError(
                name,
                transition.name,
                record["status"] if record else None,
                parse(record) if record else None,
            ) from None
        except Exception as exc:
            raise _store_error("UpdateItem", exc) from exc
        return to_record_of_item(response["Attributes"]) if returns else {}

    def _with_retention(self, transition: Transition, args: dict[str, Any]) -> dict[str, Any]:
        missing = transition.args - set(args)
        if missing:
            raise TypeError(f"{transition.name} needs {', '.join(sorted(missing))}")
        if transition.stamps:
            return {**args, "expires_at": args["now"] // 1000 + self._retention_s}
        return args

    # --- stuck jobs -----------------------------------------------------------------------------

    def expired_leases(self, job_type: str, *, before_ms: int, limit: int) -> Iterator[StuckJob]:
        for item in self._query(TOPOLOGY.table.lease_index, LEASE, job_type, before_ms, limit):
            yield StuckJob(
                job_id=item[KEY]["S"],
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
                job_id=item[KEY]["S"],
                status=JobStatus.PENDING,
                since=int(item[PENDING_SINCE]["N"]),
            )

    def _query(
        self, index: str, sort_key: str, job_type: str, before_ms: int, limit: int
    ) -> Iterator[Item]:
        """Items of one job type in a sparse index with a sort key below `before_ms`, oldest
        first across the type's shards, page by page, at most `limit`."""
        partition = TOPOLOGY.table.stuck_index_partition_key
        shards = [
            self._query_shard(index, partition, sort_key, f"{job_type}#{shard}", before_ms, limit)
            for shard in range(TOPOLOGY.table.stuck_index_shards)
        ]
        merged = heapq.merge(*shards, key=lambda item: int(item[sort_key]["N"]))
        yield from itertools.islice(merged, limit)

    def _query_shard(
        self, index: str, partition: str, sort_key: str, key: str, before_ms: int, limit: int
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
                    ExpressionAttributeNames={"#key": partition, "#since": sort_key},
                    ExpressionAttributeValues={
                        ":key": {"S": key},
                        ":before": {"N": str(before_ms)},
                    },
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


def _store_error(operation: str, exc: Exception) -> StoreError:
    code = error_code(exc) or type(exc).__name__
    return StoreError(f"DynamoDB {operation} failed: {code}")
