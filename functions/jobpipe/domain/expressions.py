"""The small language a transition is declared in: conditions on a job's stored record and the
changes a write makes to it.

A record is a job (or a workflow) as stored: a flat mapping of attribute names to plain values
(str, int, bool, lists and maps of them, sets of numbers). The same declaration is
- evaluated here, in Python, on a record (the in-memory store applies transitions this way, and
  the DynamoDB store computes the job after an outcome write without reading it back), and
- compiled by the DynamoDB store into one conditional UpdateItem.

Both follow DynamoDB's rules: a comparison with a missing attribute is false, `Add` on a missing
number starts from zero, `Remove` of a missing attribute does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """A value the caller of the transition supplies."""

    name: str


@dataclass(frozen=True)
class Field:
    """The record's current value of an attribute (`default` when it is missing)."""

    name: str
    default: Any = None


@dataclass(frozen=True)
class Sum:
    """Two numbers added (a missing field counts as its default)."""

    left: Field
    right: Field


Value = Arg | Field | Sum | str | int | bool


def value_of(value: Value, record: Mapping[str, Any], args: Mapping[str, Any]) -> Any:
    if isinstance(value, Arg):
        return args[value.name]
    if isinstance(value, Field):
        return record.get(value.name, value.default)
    if isinstance(value, Sum):
        return value_of(value.left, record, args) + value_of(value.right, record, args)
    return value


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """`field <op> value`, op one of = < <= (false when the field is missing)."""

    field: str
    op: str
    value: Value


def Is(field: str, value: Value) -> Compare:  # noqa: N802  (reads as a condition)
    return Compare(field, "=", value)


def Below(field: str, value: Value) -> Compare:  # noqa: N802
    return Compare(field, "<", value)


def AtMost(field: str, value: Value) -> Compare:  # noqa: N802
    return Compare(field, "<=", value)


@dataclass(frozen=True)
class IsIn:
    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class Missing:
    field: str


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]

    def __init__(self, *parts: Condition) -> None:
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def __init__(self, *parts: Condition) -> None:
        object.__setattr__(self, "parts", parts)


Condition = Compare | IsIn | Exists | Missing | All | AnyOf

_COMPARE = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def holds(condition: Condition, record: Mapping[str, Any], args: Mapping[str, Any]) -> bool:
    """Whether `condition` holds for `record` (DynamoDB's semantics)."""
    if isinstance(condition, Compare):
        if condition.field not in record:
            return False
        current = record[condition.field]
        expected = value_of(condition.value, record, args)
        if condition.op != "=" and not (_is_number(current) and _is_number(expected)):
            return False
        return bool(_COMPARE[condition.op](current, expected))
    if isinstance(condition, IsIn):
        return record.get(condition.field) in condition.values
    if isinstance(condition, Exists):
        return condition.field in record
    if isinstance(condition, Missing):
        return condition.field not in record
    if isinstance(condition, All):
        return all(holds(part, record, args) for part in condition.parts)
    return any(holds(part, record, args) for part in condition.parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- changes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Set:
    field: str
    value: Value


@dataclass(frozen=True)
class Add:
    """Add a number to a field (a missing one counts as 0)."""

    field: str
    amount: int


@dataclass(frozen=True)
class Append:
    """Append the list `value` to the field's list (a missing one counts as empty)."""

    field: str
    value: Arg


@dataclass(frozen=True)
class AddToSet:
    """Add the number `value` to the field's set of numbers (a missing one counts as empty).
    Adding a member twice changes nothing: a write that counts an arrival can be repeated."""

    field: str
    value: Arg


@dataclass(frozen=True)
class Remove:
    field: str


@dataclass(frozen=True)
class SetIfGiven:
    """Set the field to the arg when the caller gives one (not None); otherwise leave it."""

    field: str
    value: Arg


Change = Set | Add | AddToSet | Append | Remove | SetIfGiven


def apply_changes(
    changes: tuple[Change, ...], record: Mapping[str, Any], args: Mapping[str, Any]
) -> Record:
    """The record after `changes`, each value read from the record as it was before (as in one
    UpdateItem)."""
    after = dict(record)
    for change in changes:
        if isinstance(change, Set):
            after[change.field] = value_of(change.value, record, args)
        elif isinstance(change, SetIfGiven):
            given = args.get(change.value.name)
            if given is not None:
                after[change.field] = given
        elif isinstance(change, Add):
            after[change.field] = record.get(change.field, 0) + change.amount
        elif isinstance(change, Append):
            after[change.field] = [*record.get(change.field, []), *args[change.value.name]]
        elif isinstance(change, AddToSet):
            after[change.field] = {*record.get(change.field, ()), args[change.value.name]}
        else:
            after.pop(change.field, None)
    return after


def args_of(*parts: Condition | Change | Value) -> frozenset[str]:
    """Every Arg a declaration reads."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, Arg):
            found.add(node.name)
        elif isinstance(node, Sum):
            visit(node.left)
            visit(node.right)
        elif isinstance(node, Compare):
            visit(node.value)
        elif isinstance(node, All | AnyOf):
            for part in node.parts:
                visit(part)
        elif isinstance(node, Set | SetIfGiven | Append | AddToSet):
            visit(node.value)

    for part in parts:
        visit(part)
    return frozenset(found)
