"""Paging a listing: both job stores turn their index entries into pages the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from jobpipe.domain.job import Job
from jobpipe.ports import JobPage, JobQuery


def page_from_entries(
    entries: Iterator[tuple[str, str]],
    query: JobQuery,
    read: Callable[[list[str]], list[Job]],
) -> JobPage:
    """A page from index entries (job id, type), newest first: the type filtered on the entries,
    the jobs read a page's worth at a time and their status filtered, at most `query.examine`
    entries looked at. Both job stores page this way."""
    entries = iter(entries)
    jobs: list[Job] = []
    examined = 0
    last: str | None = None
    exhausted = False
    while len(jobs) < query.limit and examined < query.examine and not exhausted:
        wanted: list[str] = []
        while len(wanted) < query.limit - len(jobs) and examined < query.examine:
            entry = next(entries, None)
            if entry is None:
                exhausted = True
                break
            examined += 1
            last = entry[0]
            if query.job_type is None or entry[1] == query.job_type:
                wanted.append(entry[0])
        if wanted:
            jobs.extend(
                job for job in read(wanted) if not query.statuses or job.status in query.statuses
            )
    if not exhausted and next(entries, None) is None:
        exhausted = True
    return JobPage(jobs=jobs, next_before=None if exhausted else last, examined=examined)
