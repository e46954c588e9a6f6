"""Each dashboard page makes a bounded number of AWS requests and reads a bounded number of items,
with 10,000 jobs in the table and 600 dead letters (the real adapters on moto, every request
counted with botocore's event hooks)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from werkzeug.test import Client

from jobpipe.adapters.dynamodb import DynamoDBJobStore
from jobpipe.domain.states import JobStatus
from jobpipe.ops.dashboard.app import COUNTED_JOBS, DLQ_LOOKED_AT, Dashboard
from jobpipe.ops.dlq import DeadLetterQueue
from jobpipe.topology import TOPOLOGY
from tests.conftest import Aws
from tests.factories import pending_job

JOBS = 10_000
LETTERS = 600


class Meter:
    """AWS requests by operation, and the items (or index entries) they read."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register("after-call.*.*", self._count)

    def _count(self, event_name: str, parsed: dict[str, Any], **_: Any) -> None:
        self.calls[event_name.split(".")[2]] += 1
        self.items += len(parsed.get("Items", []))
        self.items += sum(len(found) for found in parsed.get("Responses", {}).values())
        self.items += 1 if "Item" in parsed else 0
        self.items += len(parsed.get("Messages", []))

    def reset(self) -> tuple[int, int]:
        seen = (sum(self.calls.values()), self.items)
        self.calls.clear()
        self.items = 0
        return seen


def test_every_page_is_bounded_with_ten_thousand_jobs(aws: Aws) -> None:
    # Given 10,000 jobs of five owners and three types, the three oldest failed, and 600 dead
    # letters
    store = DynamoDBJobStore(aws.table_name)
    types = ("echo", "sleep", "fail")
    jobs = [pending_job(types[n % 3], {"n": n}, owner=f"owner-{n % 5}") for n in range(JOBS)]
    failed = [replace(job, status=JobStatus.FAILED) for job in jobs[:3]]
    assert store.create_many(failed + jobs[3:]) == set()
    for start in range(0, LETTERS, 10):
        aws.sqs.send_message_batch(
            QueueUrl=aws.dlq_url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"job_id": jobs[n].job_id})}
                for n in range(start, start + 10)
            ],
        )
    meter = Meter()
    meter.attach(store._client)
    meter.attach(aws.sqs)

    def dead_letters() -> DeadLetterQueue:
        return DeadLetterQueue.on_sqs(
            aws.sqs, store, dlq_url=aws.dlq_url, queue_url=aws.queue_url, wait_seconds=0
        )

    browser = Client(Dashboard(store, dead_letters))

    def view(path: str) -> tuple[int, int]:
        answer = browser.get(path, headers={"Host": "127.0.0.1:8000"})
        assert answer.status_code == 200, path
        return meter.reset()

    # When each page is viewed
    overview = view("/ui")
    refreshed = view("/ui/jobs")
    filtered = view("/ui/jobs?status=failed&type=fail")
    owners = view("/ui/jobs?owner=owner-3&type=sleep")
    detail = view(f"/ui/jobs/{jobs[-1].job_id}")
    dlq = view("/ui/dlq")
    print(  # the figures, for the record (pytest -s)
        f"overview {overview}, list {refreshed}, filtered {filtered}, owner {owners}, "
        f"detail {detail}, dlq {dlq}"
    )
    # Then none scanned the table, and each stayed within its bounds: the overview counts the
    # newest 1,000 jobs (their index entries, a shard's query page more at most, and their
    # items) and lists 50; a filtered list looks at 1,000 index entries at most; the DLQ page
    # receives 500 letters at most, ten a request
    examine = TOPOLOGY.api.list_examine_limit
    shards = TOPOLOGY.table.list_index_shards
    assert "Scan" not in meter.calls
    assert overview[1] <= 2 * COUNTED_JOBS + 2 * shards * 100 + 100
    assert overview[0] <= 60
    assert refreshed[0] <= 2 * shards and refreshed[1] <= shards * 20 + 50
    assert filtered[0] <= 3 * shards + 10 and filtered[1] <= 2 * (examine + shards * 100)
    assert owners[0] <= 3 * shards + 10 and owners[1] <= 2 * (examine + shards * 100)
    assert detail == (1, 1)
    assert dlq[0] <= DLQ_LOOKED_AT // 10 + 60 and dlq[1] <= DLQ_LOOKED_AT + 10
