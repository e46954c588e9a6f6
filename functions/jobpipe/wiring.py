"""The composition root: builds the services from settings and the real adapters, once per
process, on first use. Tests build services directly with fakes instead.

Each builder imports what it builds when it is first called, so a function loads only its own
services at a cold start (the status function never loads the job types or the worker).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from jobpipe.settings import get_settings

if TYPE_CHECKING:
    from jobpipe.adapters.dynamodb import DynamoDBJobStore
    from jobpipe.adapters.scheduler import EventBridgeScheduler
    from jobpipe.adapters.sqs import SQSJobQueue
    from jobpipe.cancel.service import CancelService
    from jobpipe.domain.registry import Registry
    from jobpipe.ports import JobQueue, JobStore
    from jobpipe.reaper.service import Reaper
    from jobpipe.recurring.service import RecurringJobs
    from jobpipe.status.listing import ListService
    from jobpipe.status.service import StatusService
    from jobpipe.submit.service import SubmitService
    from jobpipe.worker.service import Worker
    from jobpipe.workflow.service import WorkflowService


def load_job_types() -> Registry:
    """The declared job types (a seam: the local stack's tests and `make chaos` put their own
    registry here)."""
    from jobpipe.domain.registry import load_job_types as load

    return load()


@cache
def job_store() -> DynamoDBJobStore:
    from jobpipe.adapters.dynamodb import DynamoDBJobStore

    settings = get_settings()
    return DynamoDBJobStore(settings.table_name, retention_days=settings.retention_days)


@cache
def job_queue() -> SQSJobQueue:
    from jobpipe.adapters.sqs import SQSJobQueue

    settings = get_settings()
    return SQSJobQueue(settings.queue_url, settings.dlq_url)


@cache
def scheduler() -> EventBridgeScheduler:
    from jobpipe.adapters.scheduler import EventBridgeScheduler

    settings = get_settings()
    return EventBridgeScheduler(
        settings.schedule_group,
        queue_arn=settings.queue_arn,
        dlq_arn=settings.dlq_arn,
        role_arn=settings.scheduler_role_arn,
    )


@cache
def submit_service() -> SubmitService:
    from jobpipe.submit.service import SubmitService

    return SubmitService(
        job_store(),
        job_queue(),
        load_job_types(),
        retention_days=get_settings().retention_days,
        scheduler=scheduler(),
    )


@cache
def status_service() -> StatusService:
    from jobpipe.status.service import StatusService

    return StatusService(job_store())


@cache
def list_service() -> ListService:
    from jobpipe.status.listing import ListService

    return ListService(job_store())


@cache
def cancel_service() -> CancelService:
    from jobpipe.cancel.service import CancelService
    from jobpipe.followups import FollowUps

    return CancelService(
        job_store(), followups=FollowUps(job_store(), job_queue()), scheduler=scheduler()
    )


@cache
def workflow_service() -> WorkflowService:
    """Reads and cancels workflows (the status and cancel functions: no job types loaded)."""
    return build_workflow_service(job_store(), job_queue())


@cache
def workflow_submit_service() -> WorkflowService:
    """Submits workflows, checking every step against the job types."""
    return build_workflow_service(job_store(), job_queue(), load_job_types())


def build_workflow_service(
    store: JobStore, queue: JobQueue, registry: Registry | None = None
) -> WorkflowService:
    from jobpipe.domain.registry import Registry
    from jobpipe.workflow.service import WorkflowService

    return WorkflowService(
        store,
        queue,
        registry if registry is not None else Registry(),
        retention_days=get_settings().retention_days,
    )


@cache
def worker() -> Worker:
    from dataclasses import replace

    from jobpipe.settings import client_shape
    from jobpipe.topology import TOPOLOGY
    from jobpipe.worker.service import Worker

    margin = replace(TOPOLOGY, aws_client=client_shape()).worker_margin_seconds()
    return Worker(job_store(), job_queue(), load_job_types(), safety_margin_ms=int(margin * 1000))


@cache
def recurring_jobs() -> RecurringJobs:
    from jobpipe.recurring.service import RecurringJobs

    return RecurringJobs(
        job_store(), job_queue(), load_job_types(), retention_days=get_settings().retention_days
    )


@cache
def reaper() -> Reaper:
    return build_reaper(job_store(), job_queue())


def build_reaper(store: JobStore, queue: JobQueue) -> Reaper:
    """A reaper over the registered job types (the local stack gives it its own clients); it
    also finishes workflows whose creation was cut off."""
    from jobpipe.followups import FollowUps
    from jobpipe.reaper.service import Reaper

    registry = load_job_types()
    workflows = build_workflow_service(store, queue, registry)
    followups = FollowUps(store, queue, finish_workflow=workflows.finish)
    return Reaper(store, queue, registry, followups=followups)


def reset() -> None:
    """Forget everything built (tests and the local stack switch settings)."""
    from jobpipe.adapters import clients
    from jobpipe.settings import client_shape

    built_once = (
        job_store,
        job_queue,
        scheduler,
        submit_service,
        recurring_jobs,
        status_service,
        list_service,
        cancel_service,
        workflow_service,
        workflow_submit_service,
        worker,
        reaper,
        get_settings,
        client_shape,
    )
    for built in built_once:
        built.cache_clear()
    clients.reset()
