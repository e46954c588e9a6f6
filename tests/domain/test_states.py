"""The state machine as data: the moves the contract allows, and no others."""

from jobpipe.domain.states import (
    ABANDON,
    FAIL,
    REPLAY,
    RETRY,
    START,
    SUCCEED,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
)


def test_contract_moves_are_the_only_moves_out_of_running() -> None:
    # Given the transitions table
    # When we collect every target reachable from `running`
    from_running = {t.target for t in TRANSITIONS if JobStatus.RUNNING in t.sources}
    # Then running may only succeed, fail or go back to retrying
    assert from_running == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRYING}


def test_a_worker_starts_only_pending_or_retrying_jobs() -> None:
    assert START.sources == {JobStatus.PENDING, JobStatus.RETRYING}
    assert START.target is JobStatus.RUNNING


def test_outcomes_leave_only_from_running() -> None:
    for transition in (SUCCEED, RETRY, FAIL):
        assert transition.sources == {JobStatus.RUNNING}


def test_terminal_jobs_only_leave_by_an_operator_replay() -> None:
    # Given a terminal status, when we look for transitions leaving it, then only REPLAY of a
    # failed job does (no backward moves otherwise)
    leaving_terminal = [t for t in TRANSITIONS if t.sources & TERMINAL]
    assert leaving_terminal == [REPLAY]
    assert REPLAY.sources == {JobStatus.FAILED}


def test_abandon_fails_any_non_terminal_job() -> None:
    assert ABANDON.sources == set(JobStatus) - TERMINAL
    assert ABANDON.target is JobStatus.FAILED


def test_terminal_statuses() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {JobStatus.SUCCEEDED, JobStatus.FAILED}
