"""Declaring job types: one function, one decorator, sensible defaults, clear refusals."""

from typing import Any

import pytest
from pydantic import BaseModel

from jobpipe.domain.registry import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_SECONDS,
    JobContext,
    Registry,
    job_type,
    load_job_types,
)
from jobpipe.domain.retry import Backoff
from jobpipe.errors import (
    ConfigurationError,
    InvalidParamsError,
    PermanentJobError,
    TransientJobError,
    UnknownJobTypeError,
)


class Params(BaseModel):
    n: int


def test_a_job_type_is_one_function_and_one_decorator() -> None:
    # Given a fresh registry
    registry = Registry()

    # When a function is declared with the decorator
    @job_type("double", into=registry)
    def double(params: Params) -> int:
        return params.n * 2

    # Then it is registered with its params model and the default policy
    declared = registry.get_type("double")
    assert declared.params_model is Params
    assert declared.policy.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert declared.policy.timeout == DEFAULT_TIMEOUT_SECONDS
    assert declared.policy.backoff == Backoff()
    assert declared.call(declared.parse_params({"n": 4}), JobContext("j", 1, 3)) == 8


def test_a_job_function_may_ask_for_its_context() -> None:
    registry = Registry()

    @job_type("ctx", into=registry)
    def with_context(params: Params, context: JobContext) -> dict[str, Any]:
        return {"attempt": context.attempt}

    declared = registry.get_type("ctx")
    assert declared.call(Params(n=1), JobContext("j", 2, 3)) == {"attempt": 2}


def test_bad_params_name_the_fields() -> None:
    registry = Registry()

    @job_type("t", into=registry)
    def t(params: Params) -> None:
        return None

    with pytest.raises(InvalidParamsError) as raised:
        registry.get_type("t").parse_params({"n": "many"})
    assert raised.value.fields[0]["loc"] == "params.n"


def test_an_unknown_type_lists_the_known_ones() -> None:
    registry = Registry()

    @job_type("b", into=registry)
    def b(params: Params) -> None: ...

    @job_type("a", into=registry)
    def a(params: Params) -> None: ...

    with pytest.raises(UnknownJobTypeError) as raised:
        registry.get_type("zzz")
    assert raised.value.known == ["a", "b"]
    assert "known types: a, b" in str(raised.value)


def test_declaring_a_name_twice_is_refused() -> None:
    registry = Registry()

    @job_type("dup", into=registry)
    def first(params: Params) -> None: ...

    with pytest.raises(ConfigurationError, match="declared twice"):

        @job_type("dup", into=registry)
        def second(params: Params) -> None: ...


def test_a_function_without_a_pydantic_params_model_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="pydantic model"):

        @job_type("bad", into=Registry())
        def bad(params: dict) -> None: ...  # type: ignore[type-arg]


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 65, "1starts-with-digit"])
def test_job_type_names_are_checked(name: str) -> None:
    with pytest.raises(ConfigurationError, match="must match"):
        job_type(name, into=Registry())


@pytest.mark.parametrize("max_attempts", [0, 101])
def test_max_attempts_is_bounded(max_attempts: int) -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        job_type("t", max_attempts=max_attempts, into=Registry())


def test_the_policy_decides_which_errors_are_permanent() -> None:
    registry = Registry()

    @job_type("p", permanent=(ValueError,), into=registry)
    def p(params: Params) -> None: ...

    policy = registry.get_type("p").policy
    assert policy.is_permanent(ValueError("bad input"))
    assert policy.is_permanent(PermanentJobError("said so"))
    assert not policy.is_permanent(TransientJobError("said so"))
    assert not policy.is_permanent(ConnectionError("network"))


def test_the_examples_ship_with_a_short_backoff() -> None:
    registry = load_job_types()
    assert {"echo", "sleep", "fail", "flaky"} <= set(registry)
    for name in ("echo", "sleep", "fail", "flaky"):
        assert registry.get_type(name).policy.backoff == Backoff(base=1.0, cap=10.0)
    assert registry.max_attempts() == registry.get_type("flaky").policy.max_attempts


def test_loading_job_types_refuses_one_whose_timeout_cannot_fit_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobpipe.domain import registry as module
    from jobpipe.topology import TOPOLOGY

    # Given the shipped job types plus one whose timeout leaves the worker no time to record
    # its outcome
    registry = Registry()
    for declared in module.load_job_types().values():
        registry.add(declared)

    @job_type("render", timeout=TOPOLOGY.max_job_timeout_seconds() + 1, into=registry)
    def render(params: Params) -> None:
        return None

    monkeypatch.setattr(module, "registry", registry)
    # When the registry is loaded (as every function does at its first use)
    # Then it is refused with the type's name, instead of handing the job back forever
    with pytest.raises(ConfigurationError, match="'render' declares timeout="):
        module.load_job_types()
