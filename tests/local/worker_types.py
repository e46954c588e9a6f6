"""Imported by the local stack's worker processes (`JOBPIPE_JOB_TYPES`): declares the test job
types in the process's registry, beside the examples."""

from jobpipe.domain.registry import registry
from tests.local.job_types import declare

declare(registry)
