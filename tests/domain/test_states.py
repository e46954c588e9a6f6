"""The state machine as data: the moves the contract allows and no others, and the small
language they are written in, evaluated as DynamoDB would."""

import pytest

from jobpipe.domain.expressions import (
    Add,
    All,
    AnyOf,
    Arg,
    AtMost,
    Below,
    Field,
    Is,
    Missing,
    Remove,
    Set,
    SetIfGiven,
    Sum,
    apply_changes,
    holds,
)
from jobpipe.domain.states import (
    ABANDON,
    CANCEL,
    CANCELLABLE_AT_ONCE,
    CLAIM_WAITING,
    REPLAY,
    START,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
)

STATUS_MOVES = {t.name: (t.sources, t.target) for t in TRANSITIONS if t.target is not None}


def test_the_moves_out_of_running_are_the_contracts() -> None:
    # Given the transitions table / When we collect every status reachable from `running`
    from_running = {
        t.target for t in TRANSITIONS if JobStatus.RUNNING in t.sources and t.target is not None
    }
    # Then running may succeed, fail, be cancelled, go back to retrying — or start again when its
    # runner died
    assert from_running == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.RETRYING,
        JobStatus.CANCELLED,
        JobStatus.RUNNING,
    }


def test_a_worker_starts_only_a_waiting_job_or_one_whose_runner_died() -> None:
    assert START.sources == {
        JobStatus.SCHEDULED,
        JobStatus.PENDING,
        JobStatus.RETRYING,
        JobStatus.RUNNING,
    }
    assert START.target is JobStatus.RUNNING


def _start_args(due: int) -> dict[str, object]:
    return {"payload_hash": "h", "lease": 9_000, "now": 1_000, "due": due}


def test_a_scheduled_job_starts_straight_from_scheduled_once_it_is_due() -> None:
    # Given a scheduled job due at 5_000 (its pending_since is its run_at)
    record = {
        "status": "scheduled",
        "payload_hash": "h",
        "attempts": 0,
        "max_attempts": 3,
        "pending_since": 5_000,
        "run_at": 5_000,
    }
    # When its message arrives once it is due / Then START takes it to running in one write
    assert holds(START.condition, record, _start_args(due=5_000))
    after = apply_changes(START.writes, record, {**_start_args(due=5_000), "expires_at": 1})
    assert after["status"] == "running" and "pending_since" not in after
    assert after["run_at"] == 5_000  # when it was due stays on record


def test_a_scheduled_job_refuses_to_start_before_it_is_due() -> None:
    record = {
        "status": "scheduled",
        "payload_hash": "h",
        "attempts": 0,
        "max_attempts": 3,
        "pending_since": 5_000,
    }
    # Given its message arrives early / Then START is refused
    assert not holds(START.condition, record, _start_args(due=4_999))


def test_a_scheduled_job_refuses_to_start_once_cancelled_or_with_another_payload() -> None:
    record = {
        "status": "scheduled",
        "payload_hash": "h",
        "attempts": 0,
        "max_attempts": 3,
        "pending_since": 5_000,
    }
    assert not holds(START.condition, {**record, "cancel_requested": True}, _start_args(6_000))
    assert not holds(START.condition, {**record, "payload_hash": "x"}, _start_args(6_000))


def test_the_reaper_claims_an_overdue_scheduled_job_like_a_pending_one() -> None:
    assert JobStatus.SCHEDULED in CLAIM_WAITING.sources
    assert CLAIM_WAITING.sources == {
        JobStatus.SCHEDULED,
        JobStatus.PENDING,
        JobStatus.RETRYING,
    }
    # Only as the index showed it: a claim of a job since moved is refused
    record = {"status": "scheduled", "pending_since": 5_000}
    assert holds(CLAIM_WAITING.condition, record, {"seen": 5_000})
    assert not holds(CLAIM_WAITING.condition, record, {"seen": 4_000})


def test_terminal_jobs_only_leave_by_an_operator_replay_of_a_failed_one() -> None:
    # Given a terminal status, when we look for moves leaving it, then only REPLAY of a failed
    # job changes a status (the others only mark a finished job, never move it backwards)
    leaving = [t for t in TRANSITIONS if t.sources & TERMINAL and t.target is not None]
    assert leaving == [REPLAY]
    assert REPLAY.sources == {JobStatus.FAILED}


def test_abandon_fails_any_job_that_is_neither_finished_nor_cancellable_only() -> None:
    assert ABANDON.sources == {
        JobStatus.SCHEDULED,
        JobStatus.PENDING,
        JobStatus.RUNNING,
        JobStatus.RETRYING,
    }
    assert ABANDON.target is JobStatus.FAILED


def test_a_cancel_ends_at_once_only_a_job_that_is_not_running() -> None:
    assert CANCEL.sources == CANCELLABLE_AT_ONCE
    assert JobStatus.SCHEDULED in CANCEL.sources
    assert JobStatus.RUNNING not in CANCEL.sources
    assert CANCEL.target is JobStatus.CANCELLED


def test_terminal_statuses() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


def test_each_transition_names_the_values_its_caller_supplies() -> None:
    assert START.args == {"payload_hash", "lease", "now", "due"}
    # the store supplies the retention itself
    assert all("expires_at" not in t.args for t in TRANSITIONS)


# --- the language, on records ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Is("n", 1), True),
        (Is("missing", 1), False),
        (Below("n", 2), True),
        (Below("missing", 2), False),  # a comparison with a missing attribute is false
        (AtMost("n", Arg("limit")), True),
        (Below("n", Field("max")), True),
        (Missing("missing"), True),
        (All(Is("n", 1), Missing("n")), False),
        (AnyOf(Is("n", 2), Is("s", "x")), True),
    ],
)
def test_conditions_hold_as_dynamodb_evaluates_them(condition: object, expected: bool) -> None:
    record = {"n": 1, "s": "x", "max": 3}
    assert holds(condition, record, {"limit": 1}) is expected  # type: ignore[arg-type]


def test_changes_read_the_record_as_it_was_before_the_write() -> None:
    # Given a record, and changes that read fields another change writes (as in one UpdateItem)
    record = {"attempts": 2, "prior": 1, "gone": True}
    changes = (
        Set("prior", Sum(Field("prior", 0), Field("attempts", 0))),
        Set("attempts", 0),
        Add("replays", 1),
        Remove("gone"),
        SetIfGiven("progress", Arg("progress")),
    )
    # When they are applied
    after = apply_changes(changes, record, {"progress": None})
    # Then each read the old record, a missing counter starts at zero, and an absent optional
    # value writes nothing
    assert after == {"attempts": 0, "prior": 3, "replays": 1}
